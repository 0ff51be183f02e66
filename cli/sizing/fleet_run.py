"""``simulate --config fleet.yaml``: a service of the fleet file, region by region, SIMULATED.

Each region is one step of the bench's results: its replicas are the pools' instances
(``max`` or ``min`` of the fleet file) times replicas per instance, each with its pool's
shipped profile; the balancer routes by the service's policy; the region gets its share
of an open-loop load by ``--weights``, spaced as the bench spaces it (``--arrival``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from inferfleet.cli.bench.config import Distribution
from inferfleet.cli.bench.metrics import StepIdentity
from inferfleet.cli.bench.models import RunResults
from inferfleet.cli.bench.records import RETRIES
from inferfleet.cli.bench.results import machine_info, now_iso, tool_info
from inferfleet.cli.bench.workload import ArrivalKind, Arrivals
from inferfleet.cli.sizing.figures import write_simulated_run
from inferfleet.cli.sizing.fleet_shapes import FleetService
from inferfleet.cli.sizing.planner import POOL_SIZE, RegionShape
from inferfleet.cli.sizing.simulator import Load, SimulatedRun, Simulation

At = Literal["min", "max"]
# A fleet's queues take about one answer's time to fill; a minute covers long answers.
FLEET_WARMUP_S = 60.0


@dataclass(frozen=True)
class RegionRun:
    region: RegionShape
    instances: tuple[int, ...]
    rate: float
    run: SimulatedRun

    @property
    def price_per_hour(self) -> float | None:
        """Mean price of one of the region's instances (None if a pool has no price)."""
        prices = [pool.price_per_hour for pool in self.region.pools]
        total = sum(self.instances)
        if None in prices or not total:
            return None
        return sum(n * p for n, p in zip(self.instances, prices, strict=True)) / total  # type: ignore[misc]


@dataclass(frozen=True)
class FleetRun:
    runs: list[RegionRun]
    schedule_hash: str
    mean_prompt_tokens: float
    mean_output_tokens: float


def simulate_fleet(
    fleet: FleetService,
    *,
    requests_per_s: float,
    prompt_tokens: Distribution,
    output_tokens: Distribution,
    duration_s: float,
    warmup_s: float,
    seed: int,
    at: At = "max",
    network_s: float = 0.0,
    arrival: ArrivalKind = "poisson",
    burstiness: float = 1.0,
) -> FleetRun:
    """Every region of ``fleet`` at its share of ``requests_per_s``."""
    rng = np.random.default_rng([seed, 7])
    prompts = prompt_tokens.sample(rng, POOL_SIZE)
    outputs = output_tokens.sample(rng, POOL_SIZE)
    digest = hashlib.sha256(
        f"fleet;seed={seed};rate={requests_per_s!r};{arrival};{burstiness!r}".encode()
    )
    digest.update(prompts.tobytes())
    digest.update(outputs.tobytes())
    total_weight = sum(region.weight for region in fleet.regions)
    horizon = warmup_s + duration_s
    runs = []
    for number, region in enumerate(fleet.regions):
        rate = requests_per_s * region.weight / total_weight
        instances = tuple(pool.current_max if at == "max" else pool.current_min
                          for pool in region.pools)  # fmt: skip
        replicas, names = [], []
        for pool, count in zip(region.pools, instances, strict=True):
            for index in range(count * pool.replicas_per_instance):
                replicas.append(pool.profile)
                names.append(f"{region.name}/{pool.instance_type}-{index}")
        # The bench's arrival process, one seed per region so regions do not move in step.
        schedule = Arrivals(
            rate, seed + number, horizon_s=horizon, kind=arrival, burstiness=burstiness
        )
        arrivals = np.fromiter(schedule, dtype=float)
        simulation = Simulation(
            replicas, routing=fleet.routing, replica_names=names, network_s=network_s, seed=seed
        )
        run = simulation.run(
            Load(arrivals=arrivals),
            prompt_tokens=prompts,
            output_tokens=outputs,
            warmup_s=warmup_s,
            window=(warmup_s, horizon),
        )
        runs.append(RegionRun(region, instances, rate, run))
    return FleetRun(
        runs=runs,
        schedule_hash=digest.hexdigest(),
        mean_prompt_tokens=float(prompts.mean()),
        mean_output_tokens=float(outputs.mean()),
    )


def write_fleet_results(
    out: Path,
    fleet: FleetService,
    simulated: FleetRun,
    *,
    prompt_tokens: Distribution,
    output_tokens: Distribution,
    duration_s: float,
    warmup_s: float,
    seed: int,
    at: At,
    arrival: ArrivalKind = "poisson",
    burstiness: float = 1.0,
) -> RunResults:
    """results.json, requests.csv, report.md and plots, one step per region, as bench writes."""
    from inferfleet.cli.bench.config import BenchConfig

    runs = simulated.runs
    limits = ("max_loop_lag_ms", "max_dispatch_lag_ms", "max_error_rate")
    bench_default = {name: BenchConfig.model_fields[name].default for name in limits}
    steps = [
        (
            StepIdentity(
                id=number,
                variant=f"region={item.region.name}",
                load=round(item.rate, 6),
                rate=round(item.rate, 6),
                instances=sum(item.instances),
                schedule_hash=simulated.schedule_hash,
            ),
            item.run,
        )
        for number, item in enumerate(runs, start=1)
    ]
    header = {
        "tool": {**tool_info(), "name": "inferfleet simulate"},
        "machine": machine_info(),
        "target": {
            "api": "openai",
            "url": f"simulated {fleet.service} of {fleet.path}",
            "model": fleet.service,
            "emulated": False,
            "simulated": True,
            "local": None,
            "instances": sum(sum(item.instances) for item in runs),
            "price_per_hour": _mean_price(runs),
            "fleet": {
                "config": str(fleet.path),
                "service": fleet.service,
                "routing": str(fleet.routing),
                "at": at,
                "regions": [
                    {
                        "region": item.region.name,
                        "weight": item.region.weight,
                        "requests_per_s": round(item.rate, 6),
                        "price_per_hour": item.price_per_hour,
                        "pools": [
                            {
                                "instance_type": pool.instance_type,
                                "instances": count,
                                "replicas": count * pool.replicas_per_instance,
                                "profile": pool.profile.model_dump(),
                            }
                            for pool, count in zip(item.region.pools, item.instances, strict=True)
                        ],
                    }
                    for item in runs
                ],
            },
        },
        "workload": {
            "prompt_tokens": str(prompt_tokens),
            "output_tokens": str(output_tokens),
            "seed": seed,
            "arrival": arrival if arrival != "gamma" else f"gamma:{burstiness:g}",
            "mean_prompt_tokens": simulated.mean_prompt_tokens,
            "mean_output_tokens": simulated.mean_output_tokens,
            "hash": simulated.schedule_hash,
        },
        "load": {
            "mode": "open",
            "rates": [round(item.rate, 6) for item in runs],
            "duration": duration_s,
            "warmup": warmup_s,
            "requests": None,
            "repeat": 1,
            **bench_default,
            # No client process ran: the simulation sends every request on time.
            "workers": 0,
            "retries": RETRIES,
        },
        "variants": [f"region={item.region.name}" for item in runs],
        "started_at": now_iso(),
    }
    return write_simulated_run(
        out,
        header,
        steps,
        open_loop=True,
        step_prices={number: item.price_per_hour for number, item in enumerate(runs, start=1)},
        compared=False,
    )


def _mean_price(runs: list[RegionRun]) -> float | None:
    """Price of one of the whole fleet's instances on average (each step has its region's)."""
    hourly = [(item.price_per_hour, sum(item.instances)) for item in runs]
    total = sum(count for _, count in hourly)
    if not total or any(price is None for price, _ in hourly):
        return None
    return round(sum(price * count for price, count in hourly) / total, 4)  # type: ignore[operator]
