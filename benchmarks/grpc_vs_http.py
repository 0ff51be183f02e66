"""TTFT and inter-token latency over gRPC and HTTP, on one Triton server, same workload.

Starts the real Triton server of the ``nvidia-pytriton`` wheel on 127.0.0.1 with the llm
model repository of ``containers/llm-neuron``, laid out as its image holds it (the CPU
engine and a tiny Llama built from a config), then runs ``inferfleet bench`` against it,
alternating ``--api triton`` (HTTP ``generate_stream``, server-sent events) and
``--api triton-grpc`` (gRPC ``ModelStreamInfer``) ``--rounds`` times with the same seed,
users and lengths. Prints TTFT, ITL and end-to-end P50/P99 of each API (the median over
rounds) side by side with the ratio gRPC / HTTP, and the client's event-loop lag.

The client runs on the same cores as the server and the tiny model's decode step dominates,
so the difference is what the protocol adds per token on this machine, not a Neuron figure.
Run from the repo root:

    .venv/bin/python benchmarks/grpc_vs_http.py [--users 4] [--requests 80] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from inferfleet.containers.image_tree import CONTAINERS, image_tree
from inferfleet.containers.local_triton import LocalTriton
from inferfleet.containers.tiny_models import build_tiny_causal_lm

INFERFLEET = str(Path(sys.executable).with_name("inferfleet"))
APIS = ("triton", "triton-grpc")
FIGURES = (("ttft_ms", "p50"), ("ttft_ms", "p99"), ("itl_ms", "p50"), ("itl_ms", "p99"),
           ("e2e_ms", "p50"), ("e2e_ms", "p99"))  # fmt: skip


def bench(api: str, target: str, out: Path, arguments: argparse.Namespace) -> dict:
    command = [
        INFERFLEET, "bench", "--api", api, "--target", target, "--model", "llm",
        "--users", str(arguments.users), "--requests", str(arguments.requests),
        "--prompt-tokens", str(arguments.prompt_tokens),
        "--output-tokens", str(arguments.output_tokens),
        "--seed", "7", "--warmup", "1", "--out", str(out),
        *(["--max-loop-lag-ms", str(arguments.max_loop_lag_ms)] if arguments.max_loop_lag_ms
          else []),
    ]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"bench --api {api} failed:\n{completed.stdout}{completed.stderr}")
    step = json.loads((out / "results.json").read_text())["steps"][0]
    if step["errors"] or step["output_length_mismatches"]:
        raise SystemExit(f"bench --api {api}: {step['errors']} errors, "
                         f"{step['output_length_mismatches']} length mismatches")  # fmt: skip
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--requests", type=int, default=80)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--max-loop-lag-ms",
        type=float,
        help="bench's client-lag limit (default: bench's own); raise it on a shared box, the "
        "client's loop lag is printed with the figures",
    )
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    steps: dict[str, list[dict]] = {api: [] for api in APIS}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        environment = {
            "INFERFLEET_ENGINE": "cpu",
            "INFERFLEET_MODEL": str(build_tiny_causal_lm(workdir / "tiny-lm")),
            "INFERFLEET_INSTANCE_ID": "local-0",
            "INFERFLEET_MAX_SEQ_LEN": "512",
            "INFERFLEET_MAX_NUM_SEQS": str(max(8, arguments.users)),
            "OMP_NUM_THREADS": "1",
        }
        repository = image_tree(CONTAINERS / "llm-neuron", workdir) / "model_repository"
        with LocalTriton(repository, workdir, environment) as server:
            targets = {"triton": server.url, "triton-grpc": server.grpc_url}
            for round_index in range(arguments.rounds):
                # Alternate which API goes first, so drift on a shared box hits both alike.
                order = APIS if round_index % 2 == 0 else APIS[::-1]
                for api in order:
                    out = workdir / f"{api}-{round_index}"
                    steps[api].append(bench(api, targets[api], out, arguments))
    figures = {
        api: {
            f"{metric} {stat}": statistics.median(s["latency"][metric][stat] for s in steps[api])
            for metric, stat in FIGURES
        }
        | {"client loop lag p99": statistics.median(
            s["client"]["loop_lag_ms"]["p99"] for s in steps[api])}
        for api in APIS
    }  # fmt: skip
    workload = {key: getattr(arguments, key) for key in
                ("users", "requests", "prompt_tokens", "output_tokens", "rounds")}  # fmt: skip
    if arguments.json:
        print(json.dumps({"workload": workload, "figures": figures}, indent=2))
        return 0
    print(f"Triton 2.51 (nvidia-pytriton), llm model on the CPU engine, tiny Llama; {workload}")
    print(f"{'':<21}{'HTTP (SSE)':>12}{'gRPC':>12}{'gRPC/HTTP':>11}")
    for name in figures["triton"]:
        http, grpc = figures["triton"][name], figures["triton-grpc"][name]
        ratio = grpc / http if http else float("nan")
        print(f"{name:<21}{http:>10.2f}ms{grpc:>10.2f}ms{ratio:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
