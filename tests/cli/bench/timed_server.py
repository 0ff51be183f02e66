"""A test server whose timing is known exactly, run as its own process.

Every streamed answer sends its first chunk ``ttft_ms`` after the request and
each further chunk ``itl_ms`` after the previous one, scheduled from the
request's arrival so sleeps never drift. One server speaks every ``--api``
the benchmark knows (restrict with ``--apis``). ``--stall-after N --stall-s S``
freezes the server for S seconds once N requests have arrived; ``--fail-every N``
answers every Nth request with HTTP 503; ``--cut-after K`` drops every stream
but the first after K chunks.

``GET /_sent_log`` returns (and forgets) when each completions answer's chunks
were handed to the socket, on the monotonic clock the client reads too, so a
test can compare the client's timestamps with the truth. ``GET /_arrivals``
counts the requests that reached the server.

Prints ``PORT <n>`` on stdout once it listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import time
import zlib

from aiohttp import web

ROUTES = ("openai", "triton", "sagemaker", "classify")


class Timing:
    def __init__(self, args: argparse.Namespace) -> None:
        self.ttft = args.ttft_ms / 1000.0
        self.itl = args.itl_ms / 1000.0
        self.instances = args.instances
        self.usage = not args.no_usage
        self.stall_after = args.stall_after
        self.stall_s = args.stall_s
        self.fail_every = args.fail_every
        self.cut_after = args.cut_after
        self.instance_in_body = args.instance_in_body
        self.arrivals = 0
        self.stall_until = 0.0
        # When each answer's bytes were handed to the socket, on the clock the client
        # also reads (CLOCK_MONOTONIC via perf_counter), keyed by prompt.
        self.sent_log: list[dict] = []

    async def arrive(self) -> tuple[float, int]:
        """Count the request, apply a stall, return (answer clock origin, arrival number)."""
        loop = asyncio.get_running_loop()
        self.arrivals += 1
        number = self.arrivals
        if self.stall_after and number == self.stall_after:
            self.stall_until = loop.time() + self.stall_s
        wait = self.stall_until - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        return loop.time(), number

    def instance(self, number: int, model: str | None = None) -> str:
        return f"inst-{number % self.instances}" + (f":{model}" if model else "")

    def headers(self, number: int, model: str | None = None) -> dict[str, str]:
        if self.instance_in_body:
            return {}
        return {"X-Inferfleet-Instance": self.instance(number, model)}

    def body_fields(self, number: int, model: str | None = None) -> dict[str, str]:
        """Like the real LLM image: the instance id in every streamed event."""
        return {"instance_id": self.instance(number, model)} if self.instance_in_body else {}

    async def chunks(self, origin: float, count: int):  # type: ignore[no-untyped-def]
        """Yield chunk numbers at origin + ttft + k * itl."""
        loop = asyncio.get_running_loop()
        for k in range(count):
            delay = origin + self.ttft + k * self.itl - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield k


def build_app(timing: Timing, apis: set[str]) -> web.Application:
    async def sse_start(request: web.Request, number: int) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **timing.headers(number),
            }
        )
        await response.prepare(request)
        return response

    async def completions(request: web.Request) -> web.StreamResponse:
        entry = {"received": time.perf_counter()}
        body = await request.json()
        origin, number = await timing.arrive()
        if timing.fail_every and number % timing.fail_every == 0:
            return web.json_response(
                {"error": "injected"}, status=503, headers=timing.headers(number)
            )
        chat = request.path.endswith("chat/completions")
        count = int(body["max_tokens"])
        response = await sse_start(request, number)
        chunk_times = []
        async for k in timing.chunks(origin, count):
            if timing.cut_after and k == timing.cut_after and number > 1:
                # The connection drops mid-stream (the first request, a preflight, is spared).
                request.transport.abort()
                return response
            choice = (
                {"index": 0, "delta": {"content": f" t{k}"}}
                if chat
                else {"index": 0, "text": f" t{k}"}
            )
            event = {"choices": [choice], **timing.body_fields(number)}
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            chunk_times.append(time.perf_counter())
        if timing.usage and body.get("stream_options", {}).get("include_usage"):
            usage = {
                "prompt_tokens": len(str(body.get("prompt", "")).split()),
                "completion_tokens": count,
                "total_tokens": count,
            }
            await response.write(
                b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
            )
        await response.write(b"data: [DONE]\n\n")
        entry["done"] = time.perf_counter()
        timing.sent_log.append(
            {**entry, "prompt": body.get("prompt"), "messages": body.get("messages"),
             "chunks": chunk_times}
        )  # fmt: skip
        await response.write_eof()
        return response

    async def sent_log(request: web.Request) -> web.Response:
        log, timing.sent_log = timing.sent_log, []
        return web.json_response(log)

    async def arrivals(request: web.Request) -> web.Response:
        return web.json_response({"arrivals": timing.arrivals})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "timed-model"}]})

    async def repository_index(request: web.Request) -> web.Response:
        return web.json_response([{"name": "timed-model", "state": "READY"}])

    async def generate_stream(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        origin, number = await timing.arrive()
        count = json.loads(body["sampling_parameters"])["max_tokens"]
        response = await sse_start(request, number)
        async for k in timing.chunks(origin, count):
            event = {
                "model_name": request.match_info["model"],
                "text_output": f" t{k}",
                **timing.body_fields(number),
            }
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        await response.write_eof()
        return response

    async def sagemaker_stream(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            return web.json_response({"message": "missing signature"}, status=403)
        origin, number = await timing.arrive()
        count = body["parameters"]["max_new_tokens"]
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                # Echo the multi-model endpoint's model in the instance id, for the test.
                **timing.headers(number, request.headers.get("X-Amzn-SageMaker-Target-Model")),
            }
        )
        await response.prepare(request)
        async for k in timing.chunks(origin, count):
            target_model = request.headers.get("X-Amzn-SageMaker-Target-Model")
            line = {
                "token": {"text": f" t{k}", "special": False},
                **timing.body_fields(number, target_model),
            }
            if k == count - 1:
                line["details"] = {"generated_tokens": count}
            await response.write(payload_part(b"data: " + json.dumps(line).encode() + b"\n"))
        await response.write_eof()
        return response

    async def classify(request: web.Request) -> web.Response:
        await request.json()
        origin, number = await timing.arrive()
        await asyncio.sleep(max(0.0, origin + timing.ttft - asyncio.get_running_loop().time()))
        return web.json_response({"label": "buy", "score": 0.9}, headers=timing.headers(number))

    async def ignores_stream(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"choices": [{"text": "whole answer at once"}]})

    @web.middleware
    async def quiet_hangups(request: web.Request, handler):  # type: ignore[no-untyped-def]
        # A benchmark interrupted mid-stream closes its connections; that is no server error.
        try:
            return await handler(request)
        except ConnectionResetError:
            return web.Response(status=499)

    app = web.Application(middlewares=[quiet_hangups])
    # A server that ignores "stream": true and answers one JSON document.
    app.router.add_post("/non-streaming/v1/completions", ignores_stream)
    app.router.add_get("/_sent_log", sent_log)
    app.router.add_get("/_arrivals", arrivals)
    if "openai" in apis:
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/completions", completions)
        app.router.add_post("/v1/chat/completions", completions)
    if "triton" in apis:
        app.router.add_post("/v2/repository/index", repository_index)
        app.router.add_post("/v2/models/{model}/generate_stream", generate_stream)
    if "sagemaker" in apis:
        app.router.add_post("/endpoints/{name}/invocations-response-stream", sagemaker_stream)
    if "classify" in apis:
        app.router.add_post("/classify", classify)
    return app


def payload_part(payload: bytes) -> bytes:
    """One AWS event-stream message carrying a SageMaker PayloadPart."""
    headers = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in (
            (":event-type", "PayloadPart"),
            (":message-type", "event"),
            (":content-type", "application/octet-stream"),
        )
    )
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(build_app(Timing(args), set(args.apis.split(","))), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    print(f"PORT {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--itl-ms", type=float, default=10.0)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--no-usage", action="store_true")
    parser.add_argument("--stall-after", type=int, default=0)
    parser.add_argument("--stall-s", type=float, default=0.0)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument(
        "--instance-in-body",
        action="store_true",
        help="name the instance in each event, not in a header",
    )
    parser.add_argument("--cut-after", type=int, default=0, help="drop streams after N chunks")
    parser.add_argument("--apis", default=",".join(ROUTES))
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
