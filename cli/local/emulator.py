"""An emulated OpenAI-compatible inference server with continuous or static batching.

Each server answers ``POST /v1/completions`` and ``POST /v1/chat/completions``
(``stream`` true or false, ``stream_options.include_usage``), producing exactly
``max_tokens`` tokens per request, paced by a batch scheduler that follows
:class:`~inferfleet.cli.sizing.profile.ServerProfile`. It also serves:

- ``GET /v1/models``: the model, marked ``"emulated": true``;
- ``GET /health``: instance id, mode, slots, ``active``, ``queued``, ``served``,
  ``"emulated": true``;
- ``GET /ready``: 200 once the scheduler runs (503 before);
- ``GET /metrics``: the same counters in Prometheus text format, and a histogram of time to
  first token (request arrival to first token, queueing included), as vLLM exports it.

Every response carries ``X-Inferfleet-Instance: <instance id>`` and
``X-Inferfleet-Emulated: true``.
"""

import asyncio
import bisect
import itertools
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from inferfleet.cli.sizing.profile import ServerProfile

INSTANCE_HEADER = "X-Inferfleet-Instance"
EMULATED_HEADER = "X-Inferfleet-Emulated"
# A step that starts this late after the previous one is treated as idle time,
# not as lag to catch up on.
_MAX_CATCH_UP_S = 0.05
_WORDS = ("emulated", "tokens", "paced", "like", "a", "batching", "accelerator")
TTFT_BUCKETS_S = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6,
                  0.8, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 40.0)  # fmt: skip


@dataclass(eq=False)
class Sequence:
    """One request inside a scheduler: its prompt size, length and token outbox."""

    prompt_tokens: int
    max_tokens: int
    emitted: int = 0
    cancelled: bool = False
    arrived: float = field(default_factory=time.monotonic)
    outbox: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)

    @property
    def finished(self) -> bool:
        return self.emitted >= self.max_tokens

    def emit(self) -> None:
        self.outbox.put_nowait(self.emitted)
        self.emitted += 1
        if self.finished:
            self.outbox.put_nowait(None)


class BatchScheduler:
    """Paces tokens for the sequences of one server; subclasses decide the batching."""

    def __init__(self, profile: ServerProfile) -> None:
        self.profile = profile
        self.waiting: deque[Sequence] = deque()
        self.served = 0
        self.generated_tokens = 0
        self.ttft_counts = [0] * (len(TTFT_BUCKETS_S) + 1)
        self.ttft_sum_s = 0.0
        self.running = False
        self._wakeup = asyncio.Event()
        self._step_end = 0.0

    @property
    def active(self) -> int:
        raise NotImplementedError

    def submit(self, sequence: Sequence) -> None:
        self.waiting.append(sequence)
        self._wakeup.set()

    async def run(self) -> None:
        self.running = True
        try:
            while True:
                await self._schedule()
        finally:
            self.running = False

    async def _schedule(self) -> None:
        raise NotImplementedError

    async def _wait_for_work(self) -> None:
        while not self.waiting:
            self._wakeup.clear()
            await self._wakeup.wait()
            self._step_end = 0.0

    async def _step(self, duration_s: float) -> None:
        # Back-to-back steps start where the previous one ended, so sleep overshoot
        # on a busy machine does not accumulate into a slower decode rate; after
        # idling (_step_end reset) a step starts now.
        now = time.monotonic()
        start = self._step_end if now - self._step_end < _MAX_CATCH_UP_S else now
        self._step_end = start + duration_s
        await asyncio.sleep(max(0.0, self._step_end - now))

    def _emit(self, sequence: Sequence) -> None:
        if sequence.cancelled or sequence.finished:
            return
        if sequence.emitted == 0:
            self._observe_ttft(time.monotonic() - sequence.arrived)
        sequence.emit()
        self.generated_tokens += 1
        if sequence.finished:
            self.served += 1

    def _observe_ttft(self, seconds: float) -> None:
        self.ttft_sum_s += seconds
        self.ttft_counts[bisect.bisect_left(TTFT_BUCKETS_S, seconds)] += 1

    def _take_waiting(self, limit: int) -> list[Sequence]:
        taken: list[Sequence] = []
        while self.waiting and len(taken) < limit:
            sequence = self.waiting.popleft()
            if not sequence.cancelled:
                taken.append(sequence)
        return taken


class ContinuousBatcher(BatchScheduler):
    """Admits queued requests into free slots between steps (iteration-level batching)."""

    def __init__(self, profile: ServerProfile) -> None:
        super().__init__(profile)
        self.batch: list[Sequence] = []

    @property
    def active(self) -> int:
        return len(self.batch)

    async def _schedule(self) -> None:
        self.batch = [s for s in self.batch if not (s.cancelled or s.finished)]
        if not self.batch:
            await self._wait_for_work()
        joining = self._take_waiting(self.profile.slots - len(self.batch))
        if joining:
            self.batch.extend(joining)
            await self._step(self.profile.prefill_s(sum(s.prompt_tokens for s in joining)))
            for sequence in joining:
                self._emit(sequence)
            return
        if self.batch:
            await self._step(self.profile.decode_step_s(len(self.batch)))
            for sequence in self.batch:
                self._emit(sequence)


class StaticBatcher(BatchScheduler):
    """Runs one batch to the end of its longest sequence before forming the next."""

    def __init__(self, profile: ServerProfile) -> None:
        super().__init__(profile)
        self.batch: list[Sequence] = []

    @property
    def active(self) -> int:
        return sum(not (s.cancelled or s.finished) for s in self.batch)

    async def _schedule(self) -> None:
        await self._wait_for_work()
        self.batch = self._take_waiting(self.profile.slots)
        if not self.batch:
            return
        await self._step(self.profile.prefill_s(sum(s.prompt_tokens for s in self.batch)))
        for sequence in self.batch:
            self._emit(sequence)
        # Finished rows stay in the padded batch: the step cost keeps the full size.
        size = len(self.batch)
        while self.active:
            await self._step(self.profile.decode_step_s(size))
            for sequence in self.batch:
                self._emit(sequence)
        self.batch = []


class RequestError(Exception):
    """A request the OpenAI API would reject with HTTP 400."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ParsedRequest:
    model: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool
    chat: bool


def text_tokens(text: str, profile: ServerProfile) -> int:
    return math.ceil(len(text) / profile.chars_per_token)


def _prompt_tokens(prompt: Any, profile: ServerProfile) -> int:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return max(1, text_tokens(prompt, profile))
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return len(prompt)
    raise RequestError(
        "prompt", "prompt must be one string or one list of token ids (batches are not emulated)"
    )


def _chat_tokens(messages: Any, profile: ServerProfile) -> int:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages", "messages must be a non-empty list")
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise RequestError("messages", "each message needs a string or text-part content")
        total += text_tokens(content, profile) + profile.chat_tokens_per_message
    return max(1, total)


def parse_request(body: Any, *, chat: bool, profile: ServerProfile, model: str) -> ParsedRequest:
    """Validate an OpenAI completions or chat body into what the scheduler needs."""
    if not isinstance(body, dict):
        raise RequestError("body", "the request body must be a JSON object")
    if chat:
        prompt_tokens = _chat_tokens(body.get("messages"), profile)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    else:
        if "prompt" not in body:
            raise RequestError("prompt", "prompt is required")
        prompt_tokens = _prompt_tokens(body["prompt"], profile)
        max_tokens = body.get("max_tokens")
    if max_tokens is None:
        max_tokens = profile.default_max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError("max_tokens", "max_tokens must be a positive integer")
    if max_tokens > profile.max_output_tokens:
        raise RequestError("max_tokens", f"max_tokens must be at most {profile.max_output_tokens}")
    if body.get("n", 1) != 1:
        raise RequestError("n", "only n=1 is emulated")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream", "stream must be true or false")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError("stream_options", "stream_options must be an object")
    return ParsedRequest(
        model=str(body.get("model") or model),
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage", False)),
        chat=chat,
    )


def _error_response(status: int, message: str, param: str | None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return web.json_response({"error": error}, status=status)


class EmulatedServer:
    """One emulated instance: an aiohttp application around a batch scheduler."""

    def __init__(self, instance_id: str, *, profile: ServerProfile, model: str) -> None:
        self.instance_id = instance_id
        self.profile = profile
        self.model = model
        scheduler_type = ContinuousBatcher if profile.batching == "continuous" else StaticBatcher
        self.scheduler: BatchScheduler = scheduler_type(profile)
        self._request_ids = itertools.count(1)
        self._scheduler_task: asyncio.Task[None] | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/metrics", self._metrics)
        app.on_response_prepare.append(self._label_response)
        app.on_startup.append(self._start_scheduler)
        app.on_cleanup.append(self._stop_scheduler)
        return app

    def counters(self) -> dict[str, int]:
        return {
            "active": self.scheduler.active,
            "queued": len(self.scheduler.waiting),
            "served": self.scheduler.served,
            "generated_tokens": self.scheduler.generated_tokens,
        }

    async def _start_scheduler(self, _app: web.Application) -> None:
        self._scheduler_task = asyncio.create_task(self.scheduler.run())

    async def _stop_scheduler(self, _app: web.Application) -> None:
        if self._scheduler_task is not None:
            self._scheduler_task.cancel()

    async def _label_response(self, _request: web.Request, response: web.StreamResponse) -> None:
        response.headers[INSTANCE_HEADER] = self.instance_id
        response.headers[EMULATED_HEADER] = "true"

    async def _models(self, _request: web.Request) -> web.Response:
        entry = {
            "id": self.model,
            "object": "model",
            "created": 0,
            "owned_by": "inferfleet",
            "emulated": True,
        }
        return web.json_response({"object": "list", "data": [entry]})

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok" if self.scheduler.running else "starting",
                "emulated": True,
                "instance": self.instance_id,
                "mode": self.profile.batching,
                "slots": self.profile.slots,
                "model": self.model,
                **self.counters(),
            }
        )

    async def _ready(self, _request: web.Request) -> web.Response:
        ready = self.scheduler.running
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        label = f'{{instance="{self.instance_id}"}}'
        counters = self.counters()
        lines = []
        for name, kind, help_text, value in (
            ("active_sequences", "gauge", "Sequences in the running batch.", "active"),
            ("queued_requests", "gauge", "Requests waiting for a slot.", "queued"),
            ("served_requests_total", "counter", "Requests completed.", "served"),
            ("generated_tokens_total", "counter", "Tokens generated.", "generated_tokens"),
        ):
            metric = f"inferfleet_emulator_{name}"
            lines += [
                f"# HELP {metric} {help_text}",
                f"# TYPE {metric} {kind}",
                f"{metric}{label} {counters[value]}",
            ]
        lines += self._ttft_histogram()
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    def _ttft_histogram(self) -> list[str]:
        metric = "inferfleet_emulator_time_to_first_token_seconds"
        counts = self.scheduler.ttft_counts
        lines = [
            f"# HELP {metric} Request arrival to first token, queueing included.",
            f"# TYPE {metric} histogram",
        ]
        for bound, cumulative in zip(
            (*(f"{b:g}" for b in TTFT_BUCKETS_S), "+Inf"), itertools.accumulate(counts), strict=True
        ):
            lines.append(
                f'{metric}_bucket{{instance="{self.instance_id}",le="{bound}"}} {cumulative}'
            )
        label = f'{{instance="{self.instance_id}"}}'
        lines += [
            f"{metric}_sum{label} {self.scheduler.ttft_sum_s:.6f}",
            f"{metric}_count{label} {sum(counts)}",
        ]
        return lines

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error_response(400, "the request body is not valid JSON", None)
        try:
            parsed = parse_request(body, chat=chat, profile=self.profile, model=self.model)
        except RequestError as error:
            return _error_response(400, str(error), error.param)
        sequence = Sequence(prompt_tokens=parsed.prompt_tokens, max_tokens=parsed.max_tokens)
        request_id = (
            f"{'chatcmpl' if chat else 'cmpl'}-{self.instance_id}-{next(self._request_ids)}"
        )
        self.scheduler.submit(sequence)
        try:
            if parsed.stream:
                return await self._stream(request, parsed, sequence, request_id)
            return await self._complete(parsed, sequence, request_id)
        finally:
            # A client that went away frees its slot, as a real server aborts the request.
            if not sequence.finished:
                sequence.cancelled = True

    async def _complete(
        self, parsed: ParsedRequest, sequence: Sequence, request_id: str
    ) -> web.Response:
        indexes = [index async for index in drain(sequence)]
        text = "".join(token_text(index) for index in indexes)
        if parsed.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        body = self._envelope(parsed, request_id, chunk=False)
        body["choices"] = [choice]
        body["usage"] = _usage(parsed, len(indexes))
        return web.json_response(body)

    async def _stream(
        self, request: web.Request, parsed: ParsedRequest, sequence: Sequence, request_id: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        produced = 0
        async for index in drain(sequence):
            produced += 1
            chunk = self._envelope(parsed, request_id, chunk=True)
            finish = "length" if produced == parsed.max_tokens else None
            text = token_text(index)
            if parsed.chat:
                delta = {"role": "assistant", "content": text} if index == 0 else {"content": text}
                chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
            else:
                chunk["choices"] = [
                    {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
                ]
            await response.write(_sse(chunk))
        if parsed.include_usage:
            chunk = self._envelope(parsed, request_id, chunk=True)
            chunk["choices"] = []
            chunk["usage"] = _usage(parsed, produced)
            await response.write(_sse(chunk))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _envelope(self, parsed: ParsedRequest, request_id: str, *, chunk: bool) -> dict[str, Any]:
        if parsed.chat:
            kind = "chat.completion.chunk" if chunk else "chat.completion"
        else:
            kind = "text_completion"
        return {
            "id": request_id,
            "object": kind,
            "created": int(time.time()),
            "model": parsed.model,
        }


async def drain(sequence: Sequence) -> AsyncIterator[int]:
    while (index := await sequence.outbox.get()) is not None:
        yield index


def token_text(index: int) -> str:
    return " " + _WORDS[index % len(_WORDS)]


def _usage(parsed: ParsedRequest, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": parsed.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": parsed.prompt_tokens + completion_tokens,
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
