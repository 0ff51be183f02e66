"""Smoke requests against a real HTTP server on 127.0.0.1."""

from collections.abc import Iterator

import pytest
from deploy_support import readiness_server
from moto_server import free_port

from inferfleet.cli.deploy.events import StepFailed
from inferfleet.cli.deploy.smoke import grpc_smoke_request, smoke_request
from inferfleet.cli.local.fleet import LocalFleet


@pytest.fixture
def server() -> Iterator[str]:
    with readiness_server() as url:
        yield url


def test_a_ready_server_passes_at_once(server: str):
    result = smoke_request(f"{server}/v2/health/ready", pause_s=0.01)
    assert (result.status, result.attempts) == (200, 1)
    assert result.latency_ms > 0


def test_a_server_that_warms_up_passes_on_a_later_attempt(server: str):
    result = smoke_request(f"{server}/warming", attempts=3, pause_s=0.01)
    assert (result.status, result.attempts) == (200, 3)


def test_an_unready_server_fails_with_its_answer(server: str):
    with pytest.raises(StepFailed, match=r"HTTP 503 .* after 2 attempts. Check the service"):
        smoke_request(f"{server}/v2/models/x/ready", attempts=2, pause_s=0.01)


def test_no_answer_hints_at_internal_load_balancers():
    url = f"http://127.0.0.1:{free_port()}/v2/health/ready"
    with pytest.raises(StepFailed, match=r"no answer .* internal load balancer .* --no-smoke"):
        smoke_request(url, attempts=1, timeout_s=2)


@pytest.mark.slow
def test_a_grpc_service_is_asked_triton_grpc_server_ready_through_its_front():
    # The local fleet's nginx grpc_pass front and emulators answer Triton's ServerReady.
    with LocalFleet(servers=1, protocol="grpc") as fleet:
        assert fleet.grpc_url is not None
        result = grpc_smoke_request(fleet.grpc_url, pause_s=0.01)
    assert (result.status, result.attempts) == (0, 1)


def test_no_grpc_answer_hints_at_internal_load_balancers():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StepFailed, match=r"ServerReady .* no answer .* internal load balancer"):
        grpc_smoke_request(url, attempts=1, timeout_s=2)
