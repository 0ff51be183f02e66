"""``simulate --config fleet.yaml``: a service of the fleet file, region by region, SIMULATED.

Each region is one step of the bench's results: its replicas are the pools' instances
(``max`` or ``min`` of the fleet file) times replicas per instance, each with its pool's
shipped profile; the balancer routes by the service's policy; the region gets its share
of the load by ``--weights``. The load is an open loop spaced as the bench spaces it
(``--arrival``): a rate held for the run, a rate that follows a schedule (a ramp, a
daily curve), or a trace's rows at their offsets. With ``autoscale`` the pools start at
``at`` and scale by the service's policy (:mod:`.autoscaling`); either way each step
records the region minute by minute (its ``timeline``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from inferfleet.cli.bench.config import Distribution
from inferfleet.cli.bench.metrics import StepIdentity, distribution
from inferfleet.cli.bench.models import RunResults, TimelinePoint
from inferfleet.cli.bench.records import RETRIES
from inferfleet.cli.bench.results import machine_info, now_iso, tool_info
from inferfleet.cli.bench.workload import ArrivalKind, Arrivals, RateSchedule, Workload
from inferfleet.cli.errors import UserError
from inferfleet.cli.sizing.autoscaling import RegionScaler, ScaledPool, TimelineSample
from inferfleet.cli.sizing.figures import write_simulated_run
from inferfleet.cli.sizing.fleet_shapes import FleetService
from inferfleet.cli.sizing.planner import POOL_SIZE, RegionShape
from inferfleet.cli.sizing.simulator import Load, SimulatedRun, Simulation

At = Literal["min", "max"]
# A fleet's queues take about one answer's time to fill; a minute covers long answers.
FLEET_WARMUP_S = 60.0
# Seed stream of the region each trace session is sent to.
_REGION_STREAM = 8


@dataclass(frozen=True)
class RegionRun:
    region: RegionShape
    instances: tuple[int, ...]  # per pool, at the start
    rate: float  # requests/s offered to the region over the measured window
    run: SimulatedRun
    timeline: list[TimelinePoint]
    mean_instances: tuple[float, ...]  # per pool, billed (serving or starting), in the window

    @property
    def price_per_hour(self) -> float | None:
        """Mean price of one of the region's instances (None if a pool has no price)."""
        prices = [pool.price_per_hour for pool in self.region.pools]
        total = sum(self.instances)
        if None in prices or not total:
            return None
        return sum(n * p for n, p in zip(self.instances, prices, strict=True)) / total  # type: ignore[misc]

    @property
    def cost_per_hour(self) -> float | None:
        """What the region's instances cost per hour over the measured window."""
        prices = [pool.price_per_hour for pool in self.region.pools]
        if None in prices:
            return None
        return sum(n * p for n, p in zip(self.mean_instances, prices, strict=True))  # type: ignore[misc]

    @property
    def peak_instances(self) -> int:
        counts = [sum(p.in_service.values()) + sum(p.starting.values()) for p in self.timeline]
        return max([sum(self.instances), *counts])


@dataclass(frozen=True)
class FleetRun:
    runs: list[RegionRun]
    schedule_hash: str
    mean_prompt_tokens: float
    mean_output_tokens: float
    window: tuple[float, float]
    workload: dict
    load: dict


def simulate_fleet(
    fleet: FleetService,
    *,
    requests_per_s: float | None = None,
    schedule: RateSchedule | None = None,
    trace: Workload | None = None,
    trace_speed: float = 1.0,
    trace_path: Path | None = None,
    prompt_tokens: Distribution | None = None,
    output_tokens: Distribution | None = None,
    duration_s: float | None = None,
    warmup_s: float,
    seed: int,
    at: At = "max",
    network_s: float = 0.0,
    arrival: ArrivalKind = "poisson",
    burstiness: float = 1.0,
    autoscale: bool = False,
) -> FleetRun:
    """Every region of ``fleet`` at its share of the load: ``requests_per_s`` held, a
    ``schedule`` of requests/s (its times from the start of the measured window; the
    warm-up holds its first rate), or the rows of a ``trace`` workload (``trace_speed``
    times faster; the measured window runs from the warm-up to its last row)."""
    if (requests_per_s is None) + (schedule is None) + (trace is None) != 2:
        raise ValueError("give one load: requests_per_s, schedule or trace")
    total_weight = sum(region.weight for region in fleet.regions)
    shares = [region.weight / total_weight for region in fleet.regions]
    if trace is not None:
        offsets, sizes, regions, describe = _trace_load(trace, trace_speed, shares, seed)
        horizon = float(offsets[-1]) if offsets.size else 0.0
        if horizon <= warmup_s:
            raise ValueError("the trace ends before the warm-up does")
        digest = trace.digest()
        digest.update(f"fleet;speed={trace_speed!r};warmup={warmup_s!r}".encode())
    else:
        assert prompt_tokens is not None and output_tokens is not None and duration_s is not None
        rng = np.random.default_rng([seed, 7])
        pool_sizes = prompt_tokens.sample(rng, POOL_SIZE), output_tokens.sample(rng, POOL_SIZE)
        horizon = warmup_s + duration_s
        shape = f"rate={requests_per_s!r}" if schedule is None else schedule.describe()
        digest = hashlib.sha256(f"fleet;seed={seed};{shape};{arrival};{burstiness!r}".encode())
        digest.update(pool_sizes[0].tobytes())
        digest.update(pool_sizes[1].tobytes())
        describe = {
            "prompt_tokens": str(prompt_tokens),
            "output_tokens": str(output_tokens),
            "seed": seed,
            "arrival": arrival if arrival != "gamma" else f"gamma:{burstiness:g}",
            "mean_prompt_tokens": float(pool_sizes[0].mean()),
            "mean_output_tokens": float(pool_sizes[1].mean()),
        }
    window = (warmup_s, horizon)
    runs = []
    for number, region in enumerate(fleet.regions):
        rows = None
        if trace is not None:
            rows = np.flatnonzero(regions == number)
            arrivals = offsets[rows]
            prompts, outputs = sizes[0][rows], sizes[1][rows]
        else:
            # The bench's arrival process, one seed per region so regions do not move in step.
            # A schedule's rate is scaled by the share; a held rate is the share of it.
            scale = shares[number] * (requests_per_s if requests_per_s is not None else 1.0)
            process = Arrivals(
                scale, seed + number, horizon_s=horizon, kind=arrival, burstiness=burstiness,
                schedule=None if schedule is None else schedule.delayed(warmup_s),
            )  # fmt: skip
            arrivals = np.fromiter(process, dtype=float)
            prompts, outputs = pool_sizes
        item = _region_run(
            fleet, region, arrivals, prompts, outputs, window=window, at=at,
            network_s=network_s, seed=seed, autoscale=autoscale,
            rate=None if requests_per_s is None else requests_per_s * shares[number],
        )  # fmt: skip
        if rows is not None and item.run.request_index is not None:
            # requests.csv numbers a replayed request by its row of the trace.
            item.run.request_index = rows[item.run.request_index]
        runs.append(item)
    return FleetRun(
        runs=runs,
        schedule_hash=digest.hexdigest(),
        mean_prompt_tokens=describe["mean_prompt_tokens"],
        mean_output_tokens=describe["mean_output_tokens"],
        window=window,
        workload=describe,
        load=_describe_load(
            requests_per_s,
            schedule,
            trace_path if trace is not None else None,
            trace_speed,
            fleet,
            autoscale,
        ),
    )


def _region_run(
    fleet: FleetService,
    region: RegionShape,
    arrivals: np.ndarray,
    prompts: np.ndarray,
    outputs: np.ndarray,
    *,
    window: tuple[float, float],
    at: At,
    network_s: float,
    seed: int,
    autoscale: bool,
    rate: float | None,
) -> RegionRun:
    instances = tuple(pool.current_max if at == "max" else pool.current_min
                      for pool in region.pools)  # fmt: skip
    if not sum(instances):
        raise UserError(
            f"--at min: no instance of {fleet.service} serves in {region.name} at the start "
            "(every pool's min is 0); use --at max, or a min of 1 or more"
        )
    # Every instance a pool may grow to has its replicas; those not in service get no request.
    replicas, names = [], []
    for pool in region.pools:
        for index in range(pool.current_max * pool.replicas_per_instance):
            replicas.append(pool.profile)
            names.append(f"{region.name}/{pool.instance_type}-{index}")
    scaler = RegionScaler(
        [
            ScaledPool(
                pool.instance_type,
                pool.current_min,
                pool.current_max,
                count,
                pool.replicas_per_instance,
            )
            for pool, count in zip(region.pools, instances, strict=True)
        ],
        fleet.scaling if autoscale else None,
    )
    simulation = Simulation(
        replicas, routing=fleet.routing, replica_names=names, network_s=network_s, seed=seed
    )
    run = simulation.run(
        Load(arrivals=arrivals),
        prompt_tokens=prompts if prompts.size else np.ones(1, dtype=np.int64),
        output_tokens=outputs if outputs.size else np.ones(1, dtype=np.int64),
        warmup_s=window[0],
        window=window,
        scaler=scaler,
    )
    duration = window[1] - window[0]
    if rate is None:
        sent = np.count_nonzero((run.sent >= window[0]) & (run.sent < window[1]))
        rate = float(sent) / duration if duration > 0 else 0.0
    return RegionRun(
        region=region,
        instances=instances,
        rate=rate,
        run=run,
        timeline=timeline(scaler.samples, run, scaler.period_s),
        mean_instances=_mean_billed(scaler.samples, region, instances, window, scaler.period_s),
    )


def timeline(
    samples: list[TimelineSample], run: SimulatedRun, period_s: float
) -> list[TimelinePoint]:
    """The scaler's minutes, with the TTFT P99 of the requests sent in each."""
    points = []
    ttft = (run.first_token - run.sent) * 1000.0
    for sample in samples:
        sent = (run.sent > sample.at_s - period_s) & (run.sent <= sample.at_s)
        answered = sent & np.isfinite(ttft)
        points.append(
            TimelinePoint(
                at_s=sample.at_s,
                requests_per_s=round(sample.requests / period_s, 3),
                requests_per_target_per_minute=sample.requests_per_target,
                in_service=sample.in_service,
                starting=sample.starting,
                queued=sample.queued,
                in_flight=sample.in_flight,
                ttft_p99_ms=distribution(ttft[answered]).p99 if answered.any() else None,
            )
        )
    return points


def _mean_billed(
    samples: list[TimelineSample],
    region: RegionShape,
    start: tuple[int, ...],
    window: tuple[float, float],
    period_s: float,
) -> tuple[float, ...]:
    """Instances per pool paid for (serving or starting), averaged over the window's minutes."""
    inside = [s for s in samples if s.at_s - period_s >= window[0] - 1e-9]
    if not inside:
        return tuple(float(count) for count in start)
    return tuple(
        round(sum(s.in_service[name] + s.starting[name] for s in inside) / len(inside), 3)
        for name in (pool.instance_type for pool in region.pools)
    )


def _trace_load(
    trace: Workload, speed: float, shares: list[float], seed: int
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray, dict]:
    """The trace's offsets, sizes (its prefix and history counted) and each row's region.

    A session stays in one region, as a user resolved to one stays; the region of each
    session (or lone row) is drawn by the weights.
    """
    assert trace.trace is not None
    rows = len(trace.trace)
    offsets = trace.trace.offsets / speed
    sizes = np.array([trace.sizes(row) for row in range(rows)], dtype=np.int64).reshape(-1, 2)
    keys: dict[str, int] = {}
    group = np.empty(rows, dtype=np.int64)
    for row, session in enumerate(trace.trace.sessions):
        group[row] = keys.setdefault(session, len(keys)) if session is not None else -1
    lone = group < 0
    group[lone] = len(keys) + np.arange(int(lone.sum()))
    rng = np.random.default_rng([seed, _REGION_STREAM])
    region_of = rng.choice(len(shares), size=int(group.max()) + 1 if rows else 0, p=shares)
    describe = {**trace.describe(), "trace_speed": speed}
    describe["mean_prompt_tokens"] = float(sizes[:, 0].mean()) if rows else 0.0
    return offsets, (sizes[:, 0], sizes[:, 1]), region_of[group], describe


def _describe_load(
    requests_per_s: float | None,
    schedule: RateSchedule | None,
    trace: Path | None,
    trace_speed: float,
    fleet: FleetService,
    autoscale: bool,
) -> dict:
    policy = fleet.scaling
    return {
        "schedule": None
        if schedule is None
        else {"shape": schedule.shape, "points": [list(point) for point in schedule.points]},
        "requests_per_s": requests_per_s,
        "trace": str(trace) if trace is not None else None,
        "trace_speed": trace_speed if trace is not None else None,
        "autoscale": {
            "requests_per_target_per_minute": policy.requests_per_target_per_minute,
            "scale_out_cooldown_s": policy.scale_out_cooldown_s,
            "scale_in_cooldown_s": policy.scale_in_cooldown_s,
            "startup_s": policy.startup_s,
        }
        if autoscale
        else None,
    }


def write_fleet_results(
    out: Path, fleet: FleetService, simulated: FleetRun, *, at: At
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
                instances=item.peak_instances,
                schedule_hash=simulated.schedule_hash,
            ),
            item.run,
        )
        for number, item in enumerate(runs, start=1)
    ]
    warmup, end = simulated.window
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
                        "cost_per_hour": None
                        if item.cost_per_hour is None
                        else round(item.cost_per_hour, 4),
                        "pools": [
                            {
                                "instance_type": pool.instance_type,
                                "instances": count,
                                "replicas": count * pool.replicas_per_instance,
                                "min": pool.current_min,
                                "max": pool.current_max,
                                "mean_instances": mean,
                                "profile": pool.profile.model_dump(),
                            }
                            for pool, count, mean in zip(
                                item.region.pools,
                                item.instances,
                                item.mean_instances,
                                strict=True,
                            )
                        ],
                    }
                    for item in runs
                ],
            },
        },
        "workload": {**simulated.workload, "hash": simulated.schedule_hash},
        "load": {
            "mode": "open",
            "rates": [round(item.rate, 6) for item in runs],
            "duration": round(end - warmup, 6),
            "warmup": warmup,
            "requests": None,
            "repeat": 1,
            **bench_default,
            # No client process ran: the simulation sends every request on time.
            "workers": 0,
            "retries": RETRIES,
            **simulated.load,
        },
        "variants": [f"region={item.region.name}" for item in runs],
        "started_at": now_iso(),
    }
    return write_simulated_run(
        out,
        header,
        steps,
        open_loop=True,
        step_costs={number: item.cost_per_hour for number, item in enumerate(runs, start=1)},
        timelines={number: item.timeline for number, item in enumerate(runs, start=1)},
        compared=False,
    )


def _mean_price(runs: list[RegionRun]) -> float | None:
    """Price of one of the whole fleet's instances on average (each step has its region's)."""
    hourly = [(item.price_per_hour, sum(item.instances)) for item in runs]
    total = sum(count for _, count in hourly)
    if not total or any(price is None for price, _ in hourly):
        return None
    return round(sum(price * count for price, count in hourly) / total, 4)  # type: ignore[operator]
