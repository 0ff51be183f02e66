"""A smoke request: the service's readiness answered through its load balancer (an HTTP GET
of its path, or Triton's gRPC ``ServerReady`` for a gRPC service)."""

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from inferfleet.cli.deploy.events import StepFailed


@dataclass(frozen=True)
class SmokeResult:
    url: str
    status: int  # the HTTP status, or 0 for gRPC's OK
    latency_ms: float
    attempts: int


def smoke_request(
    url: str, *, timeout_s: float = 10, attempts: int = 3, pause_s: float = 2
) -> SmokeResult:
    """GET ``url`` until it answers 2xx, at most ``attempts`` times (a fresh load balancer may
    answer 502/503 for a few seconds); StepFailed with the last answer otherwise."""
    last = ""
    for attempt in range(1, attempts + 1):
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                response.read()
                return SmokeResult(
                    url, response.status, (time.perf_counter() - start) * 1000, attempt
                )
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code} {error.reason}"
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            last = f"no answer ({reason})"
        if attempt < attempts:
            time.sleep(pause_s)
    raise StepFailed(f"GET {url}: {last} after {attempts} attempts. {_hint(last)}")


def grpc_smoke_request(
    url: str, *, timeout_s: float = 10, attempts: int = 3, pause_s: float = 2
) -> SmokeResult:
    """Ask Triton's gRPC ``ServerReady`` through the load balancer at ``url`` (``https://HOST``
    or ``http://HOST:PORT``) until it says ready; StepFailed with the last answer otherwise."""
    import tritonclient.grpc as grpcclient

    from inferfleet.cli.bench.clients.triton_grpc import grpc_address

    address, tls = grpc_address(url)
    last = ""
    with grpcclient.InferenceServerClient(url=address, ssl=tls) as client:
        for attempt in range(1, attempts + 1):
            start = time.perf_counter()
            try:
                if client.is_server_ready(client_timeout=timeout_s):
                    latency_ms = (time.perf_counter() - start) * 1000
                    return SmokeResult(url, 0, latency_ms, attempt)
                last = "ServerReady answered not ready"
            except grpcclient.InferenceServerException as error:
                status = str(error.status() or "")
                unreachable = status.endswith(("UNAVAILABLE", "DEADLINE_EXCEEDED"))
                last = f"{'no answer' if unreachable else 'gRPC error'} ({error.message()})"
            if attempt < attempts:
                time.sleep(pause_s)
    raise StepFailed(f"gRPC ServerReady at {url}: {last} after {attempts} attempts. {_hint(last)}")


def _hint(last: str) -> str:
    if last.startswith("no answer"):
        return (
            "An internal load balancer (network.internet_facing: false) answers only inside "
            "its VPC: run the rollout from there, or pass --no-smoke"
        )
    return "Check the service's container logs"
