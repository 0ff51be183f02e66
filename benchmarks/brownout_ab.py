"""The local brownout A/B (traffic controller on vs static weights), slowdown and kill variants.

Runs ``inferfleet bench --local --regions 3 --scenario brownout:region=1,at=20s,...
--duration 60`` for each variant and prints, per variant, the controller's time to the first
weight change (in control periods; target within 2) and TTFT P99 during the brownout with the
controller vs static weights (target: at most half). Everything is emulated on 127.0.0.1.

    python benchmarks/brownout_ab.py [--duration 60] [--out bench-brownout]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

VARIANTS = {"slowdown": "slowdown=4", "kill": "kill=60%"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--at", default="20s")
    parser.add_argument("--out", type=Path, default=Path("bench-brownout"))
    args = parser.parse_args()
    command = str(Path(sys.executable).with_name("inferfleet"))
    rows = []
    for name, effect in VARIANTS.items():
        out = args.out / name
        scenario = f"brownout:region=1,at={args.at},{effect}"
        result = subprocess.run(
            [command, "bench", "--local", "--regions", "3", "--scenario", scenario,
             "--duration", f"{args.duration:g}", "--out", str(out)],
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            print(f"{name}: inferfleet bench exited {result.returncode}", file=sys.stderr)
            return result.returncode
        scenario_figures = json.loads((out / "results.json").read_text())["scenario"]
        done = scenario_figures["done_when"]
        controller = scenario_figures["arms"]["controller"]
        rows.append(
            (
                name,
                controller["first_shift_s"],
                done["first_shift_periods"],
                controller["settled_s"],
                done["during_ttft_p99_s"]["controller"],
                done["during_ttft_p99_s"]["static"],
                done["during_ttft_p99_ratio"],
                controller["open_streams_kept_s"],
            )
        )
    print(
        "variant   first shift s (periods)   settled s   TTFT P99 during: controller / static"
        " = ratio   open streams kept s"
    )
    for name, shift, periods, settled, on, static, ratio, kept in rows:
        print(
            f"{name:9} {shift:6.2f} ({periods:.2f})            {settled:6.2f}      "
            f"{on:.3f} s / {static:.3f} s = {ratio:.3f}              {kept:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
