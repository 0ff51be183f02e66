"""A smoke request: the service's readiness path answered through its load balancer."""

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from inferfleet.cli.deploy.events import StepFailed


@dataclass(frozen=True)
class SmokeResult:
    url: str
    status: int
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
    hint = (
        "An internal load balancer (network.internet_facing: false) answers only inside its "
        "VPC: run the rollout from there, or pass --no-smoke"
        if last.startswith("no answer")
        else "Check the service's container logs"
    )
    raise StepFailed(f"GET {url}: {last} after {attempts} attempts. {hint}")
