"""A minimal client for Triton's HTTP generate extension, timing each streamed event."""

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from itertools import pairwise


@dataclass
class StreamResult:
    events: list[dict] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(event.get("text_output", "") for event in self.events)

    @property
    def time_to_first_token(self) -> float:
        return self.arrivals[0]

    @property
    def inter_token_latencies(self) -> list[float]:
        return [later - earlier for earlier, later in pairwise(self.arrivals)]


def generate_stream(base_url: str, model: str, payload: dict, timeout: float = 60) -> StreamResult:
    request = urllib.request.Request(
        f"{base_url}/v2/models/{model}/generate_stream",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    result = StreamResult()
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        for raw_line in reply:
            line = raw_line.decode().strip()
            if line.startswith("data:"):
                result.arrivals.append(time.perf_counter() - started)
                result.events.append(json.loads(line.removeprefix("data:").strip()))
    return result


def generate(base_url: str, model: str, payload: dict, timeout: float = 60) -> dict:
    request = urllib.request.Request(
        f"{base_url}/v2/models/{model}/generate",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
