"""How fast the CLI starts and synthesizes, next to the CDK CLI on the same app.

Prints the median wall time of `inferfleet --help`, of `inferfleet synth` (in
process: jsii, no CDK CLI; the lint and nag gates included) and of `cdk synth`
(the pinned CDK CLI running cdk.json's app, nag included, no cfn-lint), with the
ratio of the two synths. Run from the repo root after scripts/setup.sh:

    .venv/bin/python benchmarks/cli_startup_and_synth.py [--repeat 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(command: list[str], repeat: int) -> tuple[float, list[str]]:
    """Median wall time and the stdout of each run."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    times, outputs = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=env, check=True, capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
        outputs.append(done.stdout)
    return statistics.median(times), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as scratch:
        help_s, _ = timed([str(BIN / "inferfleet"), "--help"], max(repeat, 5))
        synth_s, reports = timed(
            [str(BIN / "inferfleet"), "synth", "--out", f"{scratch}/a", "--json"], repeat
        )
        cdk_s, _ = timed(
            [str(REPO_ROOT / "node_modules/.bin/cdk"), "synth", "-q", "--output", f"{scratch}/b"],
            repeat,
        )
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"inferfleet --help                 {help_s * 1000:8.0f} ms (median of {max(repeat, 5)})")
    phases = [json.loads(report)["seconds"] for report in reports]
    synth_only = statistics.median(p["synth_and_nag"] for p in phases)
    lint = statistics.median(p["lint"] for p in phases)
    print(f"inferfleet synth (3 regions, gates) {synth_s:6.1f} s  (median of {repeat})")
    print(f"  of which synth + nag in process   {synth_only:6.1f} s, cfn-lint {lint:.1f} s")
    print(f"cdk synth        (3 regions, nag)   {cdk_s:6.1f} s  (median of {repeat})")
    print(f"ratio inferfleet synth / cdk synth  {synth_s / cdk_s:6.2f}")
    print(f"ratio in-process synth+nag / cdk synth {synth_only / cdk_s:6.2f}")


if __name__ == "__main__":
    main()
