"""How fast is the ``inferfleet bench`` client itself?

Starts its own nginx on 127.0.0.1 (temporary prefix, stopped at the end) with two
fixed answers, then measures, in one run:

1. requests/s against a fixed JSON answer at 50 connections: wrk first, then the
   benchmark engine with 1..N worker processes, as a ratio to wrk's figure;
2. streamed tokens/s one process can consume (long fixed SSE answers);
3. the engine's event-loop lag at those loads, and whether it would have marked
   the step invalid (client-bound);
4. client CPU per streamed token (the engine process's CPU time over the step divided
   by the SSE chunks it read), against the CPU_US_PER_TOKEN_TARGET.

    python benchmarks/client_throughput.py [--duration 10] [--workers 1,2] [--json]

wrk, nginx and the engine share the machine; the ratio is the informative figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from inferfleet.cli.bench.clients.base import ClientSettings
from inferfleet.cli.bench.config import Distribution
from inferfleet.cli.bench.engine import InProcessExecutor, StepPlan, StopFlag, WorkerPool
from inferfleet.cli.bench.metrics import Thresholds, measure_step
from inferfleet.cli.bench.workload import Workload

FIXED_JSON = '{"label":"buy","score":0.93}'
REQUEST_BODY = '{"inputs": "is this red dress available in size 38"}'
LIMITS = Thresholds(max_loop_lag_ms=20.0, max_dispatch_lag_ms=20.0)
# Measured side by side on the 2-core development machine at 256 streams: inferfleet bench
# ~12 us of client CPU per streamed token, AIPerf ~77, GuideLLM ~195. Keep the lead.
CPU_US_PER_TOKEN_TARGET = 12.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sse_answer(chunks: int) -> str:
    """A completions stream of ``chunks`` one-token events, a usage event and [DONE]."""
    event = 'data: {"choices":[{"index":0,"text":" tok"}]}\n\n'
    usage = f'data: {{"choices":[],"usage":{{"completion_tokens":{chunks}}}}}\n\n'
    return event * chunks + usage + "data: [DONE]\n\n"


class Nginx:
    """nginx serving fixed answers from a temporary prefix; a context manager."""

    def __init__(self, stream_chunks: int, workers: int) -> None:
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.port = free_port()
        self.prefix = Path(tempfile.mkdtemp(prefix="inferfleet-bench-nginx-"))
        (self.prefix / "logs").mkdir()
        (self.prefix / "stream.sse").write_text(sse_answer(stream_chunks))
        # nginx started by root serves as an unprivileged user, which must read the file.
        self.prefix.chmod(0o755)
        (self.prefix / "stream.sse").chmod(0o644)
        (self.prefix / "nginx.conf").write_text(
            f"""
worker_processes {workers};
daemon off;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location = /classify {{
            default_type application/json;
            return 200 '{FIXED_JSON}';
        }}
        location = /v1/completions {{
            # Static files refuse POST; the redirect serves the stream file as a GET.
            error_page 405 =200 /stream.sse;
            return 405;
        }}
        location = /stream.sse {{
            root {self.prefix};
            types {{ }}
            default_type text/event-stream;
        }}
    }}
}}
"""
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Nginx:
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
             "-e", str(self.prefix / "logs" / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    self.__exit__()
                    raise SystemExit(f"nginx did not start: {stderr}") from None
                time.sleep(0.05)

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


def run_wrk(url: str, connections: int, seconds: float, threads: int) -> float:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{REQUEST_BODY}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    try:
        output = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             "-s", str(script), f"{url}/classify"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        script.unlink(missing_ok=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not found:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    return float(found.group(1))


def run_engine(
    api: str, url: str, users: int, seconds: float, workers: int, output_tokens: int = 1
) -> dict:
    workload = Workload(
        seed=0,
        prompt_tokens=Distribution.parse("8"),
        output_tokens=Distribution.parse(str(output_tokens)),
    )
    target = f"{url}/classify" if api == "classify" else url
    settings = ClientSettings(target=target, model="fixed", max_connections=users, timeout=30)
    stop = StopFlag()
    executor = (
        WorkerPool(workers, api, settings, workload, stop)
        if workers > 1
        else InProcessExecutor(api, settings, workload, stop)
    )
    try:
        warmup = 1.0
        outcome = executor.run(StepPlan(users=users, duration=seconds, warmup=warmup))
    finally:
        executor.close()
    window = (outcome.measured_from, outcome.measured_from + seconds)
    step = measure_step(outcome, open_loop=False, thresholds=LIMITS, window=window).summary
    return {
        "requests_per_s": step["requests_per_s"],
        "output_tokens_per_s": round(step["output_tokens_per_min"] / 60.0, 1),
        "errors": step["errors"],
        "loop_lag_p99_ms": step["client"]["loop_lag_ms"]["p99"],
        "client_cpu_us_per_token": step["client"]["cpu_us_per_token"],
        "client_cpu_percent": step["client"]["process_cpu_percent"],
        "valid": step["valid"],
        "invalid_reasons": step["invalid_reasons"],
    }


def run_bare_aiohttp(url: str, connections: int, seconds: float) -> float:
    """The same POSTs from a plain aiohttp loop with no bookkeeping: the engine's ceiling."""
    import asyncio

    import aiohttp

    async def go() -> float:
        body = REQUEST_BODY.encode()
        headers = {"Content-Type": "application/json"}
        # The engine's session settings, so only the bookkeeping differs.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        async with session:
            done = 0
            warm_until = time.perf_counter() + 1.0
            deadline = warm_until + seconds

            async def user() -> None:
                nonlocal done
                while (now := time.perf_counter()) < deadline:
                    async with session.post(f"{url}/classify", data=body, headers=headers) as r:
                        await r.read()
                    done += now >= warm_until

            await asyncio.gather(*(user() for _ in range(connections)))
            return done / seconds

    return asyncio.run(go())


def version_of(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError:
        return "missing"
    return (done.stdout + done.stderr).strip().splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", default="1,2", help="engine process counts to try")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--nginx-workers", type=int, default=1)
    parser.add_argument("--stream-chunks", type=int, default=1000, help="tokens per SSE answer")
    parser.add_argument("--streams", default="1,8,256", help="concurrent SSE answers to try")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    worker_counts = [int(count) for count in args.workers.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    figures: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "aiohttp": metadata.version("aiohttp"),
            "nginx": version_of(["nginx", "-v"]),
            "wrk": version_of(["wrk", "--version"]),
            "load_average_at_start": os.getloadavg(),
        },
        "settings": vars(args),
    }
    with Nginx(args.stream_chunks, args.nginx_workers) as nginx:
        print(f"nginx on {nginx.url}; {args.duration:g} s per measurement", file=sys.stderr)
        wrk = run_wrk(nginx.url, args.connections, args.duration, args.wrk_threads)
        figures["fixed_response"] = {"connections": args.connections, "wrk_requests_per_s": wrk}
        bare = run_bare_aiohttp(nginx.url, args.connections, args.duration)
        figures["fixed_response"]["bare_aiohttp_requests_per_s"] = round(bare, 1)
        engines = []
        for workers in worker_counts:
            print(f"engine, {workers} process(es)...", file=sys.stderr)
            measured = run_engine("classify", nginx.url, args.connections, args.duration, workers)
            measured["workers"] = workers
            measured["ratio_to_wrk"] = round(measured["requests_per_s"] / wrk, 3)
            engines.append(measured)
        figures["fixed_response"]["engine"] = engines
        streams = []
        for count in (int(value) for value in args.streams.split(",")):
            print(f"streaming, {count} concurrent answer(s)...", file=sys.stderr)
            measured = run_engine(
                "openai", nginx.url, count, args.duration, 1, output_tokens=args.stream_chunks
            )
            measured["streams"] = count
            streams.append(measured)
        figures["streaming_one_process"] = {
            "tokens_per_answer": args.stream_chunks,
            "runs": streams,
        }

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_figures(figures, args)


def _verdict(measured: dict) -> str:
    return "valid" if measured["valid"] else "INVALID: " + "; ".join(measured["invalid_reasons"])


def print_figures(figures: dict, args: argparse.Namespace) -> None:
    machine, fixed = figures["machine"], figures["fixed_response"]
    wrk = fixed["wrk_requests_per_s"]
    bare = fixed["bare_aiohttp_requests_per_s"]
    load = ", ".join(f"{value:.2f}" for value in machine["load_average_at_start"])
    print(
        f"machine: {machine['cpus']} CPUs, {machine['platform']}, python {machine['python']}, "
        f"aiohttp {machine['aiohttp']}, {machine['nginx']}, {machine['wrk']}"
    )
    print(f"load average at start: {load}")
    print(
        f"\nfixed JSON answer from nginx, {args.connections} connections, "
        f"{args.duration:g} s each (run one after the other):"
    )
    print(f"  wrk ({args.wrk_threads} threads)          {wrk:>10,.0f} req/s")
    print(f"  bare aiohttp loop        {bare:>10,.0f} req/s  = {bare / wrk:.2f} x wrk")
    for engine in fixed["engine"]:
        print(
            f"  engine, {engine['workers']} process(es)   {engine['requests_per_s']:>10,.0f} req/s"
            f"  = {engine['ratio_to_wrk']:.2f} x wrk, loop lag p99 "
            f"{engine['loop_lag_p99_ms']:.1f} ms, errors {engine['errors']}, {_verdict(engine)}"
        )
    streaming = figures["streaming_one_process"]
    print(
        f"\nstreamed tokens, one process, answers of {streaming['tokens_per_answer']} SSE chunks:"
    )
    for stream in streaming["runs"]:
        cpu = stream["client_cpu_us_per_token"]
        verdict = "n/a" if cpu is None else ("met" if cpu <= CPU_US_PER_TOKEN_TARGET else "MISSED")
        print(
            f"  {stream['streams']:>3} concurrent  {stream['output_tokens_per_s']:>10,.0f} tokens/s"
            f" ({stream['requests_per_s']:.1f} answers/s), client CPU "
            f"{cpu if cpu is not None else float('nan'):.2f} us/token (target <= "
            f"{CPU_US_PER_TOKEN_TARGET:g}: {verdict}; {stream['client_cpu_percent']}% of a core), "
            f"loop lag p99 {stream['loop_lag_p99_ms']:.1f} ms, errors {stream['errors']}, "
            f"{_verdict(stream)}"
        )


if __name__ == "__main__":
    main()
