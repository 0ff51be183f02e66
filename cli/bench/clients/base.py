"""The shared part of every client: one aiohttp session, timing, error kinds.

aiohttp rather than httpx: on this class of machine httpx's throughput collapses
as concurrency grows, which would make the client the bottleneck.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from time import perf_counter
from typing import ClassVar

import aiohttp

from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec

# Bodies are encoded here and sent as bytes: cheaper than aiohttp's JSON payload path.
JSON_HEADERS = {"Content-Type": "application/json"}
YIELD_EVERY_LINES = 128
INSTANCE_HEADER = "X-Inferfleet-Instance"
# Servers that cannot set headers per response (Triton's Python backend) name the
# instance in each streamed event instead; the header wins where both are sent.
INSTANCE_FIELD = "instance_id"
EMULATED_HEADER = "X-Inferfleet-Emulated"
# gRPC answers carry no per-response header the client sees: a response parameter says it.
EMULATED_PARAMETER = "inferfleet_emulated"


class StreamFormatError(Exception):
    """The response is not in the shape the chosen ``--api`` speaks."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    target: str
    endpoint: str = "completions"
    model: str | None = None
    target_model: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    timeout: float = 300.0
    max_connections: int = 4096


class Client(ABC):
    """Sends one request and records when its bytes came back."""

    api: ClassVar[str]
    streams: ClassVar[bool] = True
    registry: ClassVar[dict[str, type[Client]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "api" in cls.__dict__:
            Client.registry[cls.api] = cls

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout, sock_connect=10),
            # aiohttp resends a request on a stale keep-alive connection only for idempotent
            # methods; every measured request is a POST, so none is resent (records.RETRIES).
            # The client measures the server, so it skips response decompression.
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        try:
            await self.prepare()
        except BaseException:
            await self._session.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the client as an async context manager"
        return self._session

    async def prepare(self) -> None:  # noqa: B027 - most APIs need no preparation
        """Work done once before the first request (discovering a model name)."""

    def describe(self) -> dict:
        return {"api": self.api, "url": self.settings.target}

    async def send(self, spec: RequestSpec, record: RequestRecord) -> None:
        """Fill ``record`` from one exchange; failures become error kinds, never exceptions."""
        record.sent = perf_counter()
        try:
            await self.exchange(spec, record)
        except TimeoutError:
            record.fail("timeout", f"no complete answer within {self.settings.timeout:g} s")
        except aiohttp.ClientConnectorError as error:
            record.fail("connect", str(error))
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as error:
            # The connection dropped after it was made: reset, closed, or cut mid-body.
            record.fail("disconnected", str(error) or type(error).__name__)
        except aiohttp.ClientError as error:
            record.fail("client_error", f"{type(error).__name__}: {error}")
        except StreamFormatError as error:
            record.fail("bad_stream", str(error))
        except asyncio.CancelledError:
            record.fail("cancelled", "the run stopped before the answer completed")
            raise
        if record.end is None:
            record.end = perf_counter()

    @abstractmethod
    async def exchange(self, spec: RequestSpec, record: RequestRecord) -> None:
        """Send ``spec``, record token arrivals, set ``record.end`` when the answer is complete."""

    def note_response(self, response: aiohttp.ClientResponse, record: RequestRecord) -> bool:
        """Record status and instance headers; False (and an error kind) when not a success."""
        record.first_byte = perf_counter()
        record.status = response.status
        record.instance = response.headers.get(INSTANCE_HEADER)
        record.emulated = response.headers.get(EMULATED_HEADER, "").lower() == "true"
        return response.status < 400

    @staticmethod
    def note_instance(chunk: dict, record: RequestRecord) -> None:
        """Take the instance id from a streamed event when no header named it."""
        if record.instance is None:
            instance = chunk.get(INSTANCE_FIELD)
            if isinstance(instance, str) and instance:
                record.instance = instance[:200]

    async def fail_with_body(self, response: aiohttp.ClientResponse, record: RequestRecord) -> None:
        body = await response.read()
        record.end = perf_counter()
        record.bytes = len(body)
        record.fail(f"http_{response.status}", body[:300].decode("utf-8", "replace"))


async def sse_data(
    response: aiohttp.ClientResponse, record: RequestRecord
) -> AsyncIterator[tuple[float, bytes]]:
    """``(arrival time, payload)`` of each ``data:`` line of a server-sent event stream.

    Reads whatever the socket delivered and splits it here: one await per TCP read
    rather than per line, and every line stamped with the time its bytes arrived.
    Counts the body bytes into ``record``.
    """
    pending = b""
    async for received in response.content.iter_any():
        now = perf_counter()
        record.bytes += len(received)
        *lines, pending = (pending + received).split(b"\n")
        for number, line in enumerate(lines, start=1):
            if line.startswith(b"data:"):
                yield now, line[5:].strip()
            if number % YIELD_EVERY_LINES == 0:
                # A burst of thousands of events must not hold the loop: other streams'
                # bytes are waiting to be stamped.
                await asyncio.sleep(0)
    if pending.startswith(b"data:"):
        yield perf_counter(), pending[5:].strip()


def expect_event_stream(response: aiohttp.ClientResponse) -> None:
    content_type = response.headers.get("Content-Type", "")
    if "text/event-stream" not in content_type:
        raise StreamFormatError(
            f"expected a text/event-stream answer, got '{content_type or 'no content type'}'"
        )
