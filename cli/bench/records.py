"""What one request looked like from the client's side, timestamped with perf_counter.

``time.perf_counter`` is CLOCK_MONOTONIC on Linux, shared by all processes, so
records from several worker processes sit on one time axis.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

# A failed request is recorded once and never sent again: a retry would hide the failure
# from the figures and send load the schedule did not ask for.
RETRIES = 0

# Failed requests by what went wrong, for each step's ``errors_by_class`` (the kinds in
# ``errors_by_kind`` say more: http_503, connect, truncated...).
ERROR_CLASSES = {
    "connection": "no answer began: the connection was refused, reset or closed first",
    "http": "the server or balancer answered with an error status (HTTP or gRPC)",
    "cut_stream": "the answer began, then its stream was cut or ended without its end marker",
    "stream_error": "the server reported an error inside the stream",
    "timeout": "no complete answer within --timeout",
    "protocol": "the answer was not in the --api's shape, or the client library failed",
}
_CLASS_OF_KIND = {
    "connect": "connection",
    "truncated": "cut_stream",
    "server_error": "stream_error",
    "stream_error": "stream_error",
    "timeout": "timeout",
    "bad_stream": "protocol",
    "client_error": "protocol",
}


@dataclass(slots=True)
class RequestRecord:
    index: int
    prompt_tokens: int
    requested_tokens: int
    scheduled: float | None = None
    sent: float = 0.0
    first_byte: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    end: float | None = None
    chunks: int = 0
    # Chunks stamped at the same instant as the one before: they arrived in one read, so
    # their gap says nothing about the server (the per-request mean still does).
    coalesced: int = 0
    bytes: int = 0
    usage_tokens: int | None = None
    usage_prompt_tokens: int | None = None
    itl_ms: array = field(default_factory=lambda: array("d"))
    instance: str | None = None
    emulated: bool = False
    status: int | None = None
    error: str | None = None
    error_detail: str = ""
    warmup: bool = False
    dispatch_lag_s: float = 0.0
    # Open loop: how long the request waited in the client for a --max-inflight slot.
    inflight_wait_s: float = 0.0
    # --turns: the conversation the request belongs to and its turn (0 first), else None.
    conversation: int | None = None
    turn: int | None = None

    def token(self, now: float) -> None:
        """A chunk carrying generated text arrived at ``now``."""
        if self.first_token is None:
            self.first_token = now
        else:
            if now == self.last_token:
                self.coalesced += 1
            self.itl_ms.append((now - self.last_token) * 1000.0)  # type: ignore[operator]
        self.last_token = now
        self.chunks += 1

    def fail(self, kind: str, detail: str = "") -> None:
        if self.error is None:
            self.error = kind
            self.error_detail = detail[:300]

    @property
    def error_class(self) -> str | None:
        """The :data:`ERROR_CLASSES` key of a failed request (None if it did not fail)."""
        kind = self.error
        if kind is None:
            return None
        if kind == "disconnected":
            began = self.first_byte is not None or self.first_token is not None
            return "cut_stream" if began else "connection"
        if kind.startswith(("http_", "grpc_")):
            return "http"
        return _CLASS_OF_KIND.get(kind, "protocol")

    @property
    def ok(self) -> bool:
        return self.error is None and self.end is not None

    @property
    def output_tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.chunks

    @property
    def token_source(self) -> str:
        return "usage" if self.usage_tokens is not None else "chunks"
