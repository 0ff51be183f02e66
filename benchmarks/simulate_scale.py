"""How fast the fleet simulator runs at the scale it exists for.

Simulates 1,000 replicas of the shipped Llama-70B-on-inf2.48xlarge profile (8 slots)
for 10 simulated minutes of Poisson arrivals at 80 % of their saturated throughput
(prompts lognormal around 1,500 tokens, outputs around 250), for each routing policy,
and prints requests, events, wall time and events/s; a 100-replica run of the same
load per replica is the reference for the ratios. Run from the repo root:

    .venv/bin/python benchmarks/simulate_scale.py [--replicas 1000] [--minutes 10]
"""

import argparse
import os
import platform
import sys
import time

import numpy as np

from inferfleet.cli.sizing import catalog
from inferfleet.cli.sizing.figures import step_summary
from inferfleet.cli.sizing.simulator import Load, Simulation

PROMPT_MEDIAN, OUTPUT_MEDIAN = 1500, 250
UTILISATION = 0.8


def workload(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prompts = np.maximum(1, np.rint(rng.lognormal(np.log(PROMPT_MEDIAN), 0.3, 8192)))
    outputs = np.maximum(2, np.rint(rng.lognormal(np.log(OUTPUT_MEDIAN), 0.3, 8192)))
    return prompts.astype(np.int64), outputs.astype(np.int64)


def run(replicas: int, seconds: float, routing: str) -> dict:
    profile = catalog.published_profile(catalog.published_figures()[0])
    prompts, outputs = workload(0)
    per_replica = profile.saturated_tokens_per_s(prompts.mean(), outputs.mean())
    rate = UTILISATION * replicas * per_replica / outputs.mean()
    rng = np.random.default_rng(1)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=int(rate * seconds * 1.05) + 100))
    arrivals = arrivals[arrivals < seconds]
    warmup = min(60.0, seconds / 5)
    started = time.perf_counter()
    simulated = Simulation([profile] * replicas, routing=routing).run(
        Load(arrivals=arrivals),
        prompt_tokens=prompts,
        output_tokens=outputs,
        warmup_s=warmup,
        window=(warmup, seconds),
    )
    simulate_s = time.perf_counter() - started
    summary = step_summary(simulated, open_loop=True)
    return {
        "requests": arrivals.size,
        "events": simulated.events,
        "simulate_s": simulate_s,
        "figures_s": time.perf_counter() - started - simulate_s,
        "events_per_s": simulated.events / simulate_s,
        "tokens_per_min": summary.output_tokens_per_min,
        "ttft_p99_ms": summary.latency["ttft_ms"].p99,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    seconds = args.minutes * 60.0
    print(
        f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"profile: {catalog.published_figures()[0].id}, {UTILISATION:.0%} of saturated "
        f"throughput, {args.minutes:g} simulated minutes"
    )
    header = (
        f"{'routing':<28}{'replicas':>9}{'requests':>10}{'events':>11}{'wall s':>8}"
        f"{'events/s':>10}{'tokens/min':>13}{'TTFT p99 ms':>12}"
    )
    print(header)
    for routing in ("least_outstanding_requests", "random", "round_robin"):
        reference = run(max(1, args.replicas // 10), seconds, routing)
        full = run(args.replicas, seconds, routing)
        for replicas, figures in ((max(1, args.replicas // 10), reference), (args.replicas, full)):
            print(
                f"{routing:<28}{replicas:>9}{figures['requests']:>10,}{figures['events']:>11,}"
                f"{figures['simulate_s']:>8.1f}{figures['events_per_s']:>10,.0f}"
                f"{figures['tokens_per_min']:>13,.0f}{figures['ttft_p99_ms']:>12,.0f}"
            )
        ratio = full["simulate_s"] / reference["simulate_s"]
        print(
            f"  {routing}: {args.replicas} replicas took {ratio:.1f}x the wall time of "
            f"{max(1, args.replicas // 10)} for {full['requests'] / reference['requests']:.1f}x "
            f"the requests; figures {full['figures_s']:.1f} s"
        )
    print(f"target: {args.replicas} replicas x {args.minutes:g} min in under 60 s")


if __name__ == "__main__":
    main()
