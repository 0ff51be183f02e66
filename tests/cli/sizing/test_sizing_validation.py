"""The simulator against the real local rehearsal: same profile, same workload, same flags.

``inferfleet bench --local`` measures 5 emulated servers behind a real nginx with 20
users, least outstanding requests then random; ``inferfleet simulate --local`` with
the same flags predicts the same run. Random routing's draws are replayed from the
measured run's requests.csv (``--replay-routing``): a 60 s run has ~230 requests, and
with independent draws its TTFT P99 alone varies by 20-40 % from one run to the next
(see the README), which no simulator can match run for run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FLAGS = (
    "--local", "--servers", "5", "--users", "20", "--duration", "60",
    "--compare", "routing=least_outstanding_requests,random",
    "--output-tokens", "lognormal:128:0.5",
)  # fmt: skip


def inferfleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inferfleet.cli", *args], capture_output=True, text=True, timeout=900
    )


def keys(tree: object, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return set()
    found = set()
    for key, value in tree.items():
        found.add(prefix + key)
        if key != "per_instance":
            found |= keys(value, f"{prefix}{key}.")
    return found


@pytest.mark.slow
def test_simulated_local_run_matches_the_measured_one(tmp_path: Path) -> None:
    measured_dir, simulated_dir = tmp_path / "bench", tmp_path / "simulate"
    bench = inferfleet("bench", *FLAGS, "--out", str(measured_dir))
    assert bench.returncode == 0, bench.stderr
    simulate = inferfleet(
        "simulate", *FLAGS, "--replay-routing", str(measured_dir / "requests.csv"),
        "--out", str(simulated_dir),
    )  # fmt: skip
    assert simulate.returncode == 0, simulate.stderr
    measured = json.loads((measured_dir / "results.json").read_text())
    simulated = json.loads((simulated_dir / "results.json").read_text())

    # File to file: the same requests, the same steps, every key the bench writes.
    assert simulated["workload"]["hash"] == measured["workload"]["hash"]
    assert keys(measured) - {"steps", "comparisons"} <= keys(simulated)
    assert [s["variant"] for s in simulated["steps"]] == [s["variant"] for s in measured["steps"]]
    errors = []
    for real, predicted in zip(measured["steps"], simulated["steps"], strict=True):
        assert real["valid"], real["invalid_reasons"]
        # What the servers said of themselves (queue depth, batch) has no simulated source.
        server_view = {key for key in keys(real) if key.startswith("server_metrics.")}
        assert keys(real) - server_view <= keys(predicted)
        tokens = predicted["output_tokens_per_min"] / real["output_tokens_per_min"] - 1
        ttft = predicted["latency"]["ttft_ms"]["p99"] / real["latency"]["ttft_ms"]["p99"] - 1
        errors.append((real["variant"], tokens, ttft))
    print()
    for variant, tokens, ttft in errors:
        print(f"{variant}: tokens/min error {tokens:+.1%}, TTFT P99 error {ttft:+.1%}")
    for variant, tokens, ttft in errors:
        assert abs(tokens) <= 0.10, variant
        assert abs(ttft) <= 0.25, variant
