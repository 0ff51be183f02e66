"""Smoke requests against a real HTTP server on 127.0.0.1."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from moto_server import free_port

from inferfleet.cli.deploy.events import StepFailed
from inferfleet.cli.deploy.smoke import smoke_request


class _Readiness(BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        ready = self.path == "/v2/health/ready" or (self.path == "/warming" and self.calls > 2)
        self.send_response(200 if ready else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Readiness.calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Readiness)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


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
