"""Size a service's pools, region by region, for a load and an SLO, with the simulator.

For each region the planner finds the fewest instances whose simulated TTFT, ITL and
E2E P99 meet the SLO at the region's load, keeping the fleet file's mix of instance
types in the region (each pool's share of its ``max``). Two loads per region:

- **peak**: the average load x ``peak_factor`` x (1 + ``headroom``), split by the
  regions' weights; with ``survive_region_loss``, the largest share the region can be
  left with when any one other region is lost (its traffic moving to the others in
  proportion to their weights). This gives the pool's ``max``.
- **average**: the average load's share with every region up. This gives ``min``.

A fleet file gives one ``min``/``max`` per pool for every region the pool runs in, so
the suggested values are the largest over those regions.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from inferfleet.cli.bench.config import Distribution, parse_seconds
from inferfleet.cli.bench.metrics import distribution
from inferfleet.cli.bench.models import SloLimit, StepResult
from inferfleet.cli.bench.workload import RateSchedule, ScheduleShape
from inferfleet.cli.sizing.figures import step_summary
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.cli.sizing.simulator import Load, Simulation

# Enough measured requests for a P99 that moves by a few percent between seeds.
MEASURED_REQUESTS = 12_000
MIN_SIMULATED_S, MAX_SIMULATED_S = 60.0, 900.0
POOL_SIZE = 8192
# Stop bisecting when the bracket is this tight (relative), or one instance wide.
PRECISION = 0.02
MAX_INSTANCES = 100_000
# Fleet sizes, relative to the plan's, also simulated at peak for the plot.
SWEEP = (0.8, 1.25, 1.6)


_LOAD = re.compile(
    r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<scale>[kKmM]?)\s*(?P<what>tok|tokens|req|requests)"
    r"\s*/\s*(?P<per>s|min|h)\s*$"
)
_PER_SECOND = {"s": 1.0, "min": 60.0, "h": 3600.0}
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6}


def missed_limits(slo: Sequence[SloLimit], step: StepResult) -> list[str]:
    """The limits ``step`` breaks (a figure nothing measured breaks its limit)."""
    missed = []
    for limit in slo:
        figures = step.latency.get(limit.metric)
        value = getattr(figures, limit.point) if figures is not None else None
        if value is None or value > limit.limit_ms:
            missed.append(limit.name)
    return missed


def describe_slo(slo: Sequence[SloLimit]) -> str:
    return ", ".join(f"{limit.name}<={limit.limit_ms:g}ms" for limit in slo) or "none"


@dataclass(frozen=True)
class PoolShape:
    """One pool of a region: what an instance brings and costs, and its share of the mix.

    ``index`` is the pool's position in the service's ``pools`` of the fleet file, and
    ``current_min``/``current_max`` what the file says now.
    """

    index: int
    instance_type: str
    replicas_per_instance: int
    chips_per_instance: int
    profile: ServerProfile
    share: float
    price_per_hour: float | None
    current_min: int = 1
    current_max: int = 1


@dataclass(frozen=True)
class RegionShape:
    name: str
    pools: tuple[PoolShape, ...]
    weight: float


def parse_load(text: str, mean_output_tokens: float) -> float:
    """Requests/s of ``3000000tok/min``, ``3Mtok/min``, ``200req/s`` (output tokens)."""
    match = _LOAD.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a load; write output tokens or requests per s, min or h, "
            "e.g. 3000000tok/min, 3Mtok/min or 200req/s"
        )
    amount = float(match["number"]) * _SCALE[match["scale"].lower()] / _PER_SECOND[match["per"]]
    if amount <= 0:
        raise ValueError(f"{text!r}: the load must be above 0")
    return amount / mean_output_tokens if match["what"].startswith("tok") else amount


def parse_load_schedule(
    text: str, mean_output_tokens: float, shape: ScheduleShape = "ramp"
) -> RateSchedule:
    """``0m=1Mtok/min,30m=3Mtok/min``: requests/s at moments (seconds, ``ms``, ``m``, ``h``)."""
    points = []
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        moment, separator, load = part.partition("=")
        if not separator:
            raise ValueError(
                f"{part!r} is not TIME=LOAD; write a schedule like 0m=1Mtok/min,30m=3Mtok/min"
            )
        points.append((parse_seconds(moment), parse_load(load.strip(), mean_output_tokens)))
    times = [moment for moment, _ in points]
    if times != sorted(times) or len(set(times)) != len(times):
        raise ValueError(f"{text!r}: give the schedule's times in ascending order, each once")
    return RateSchedule(tuple(points), shape)


@dataclass(frozen=True)
class Demand:
    """The load on the service: average requests/s, request sizes, and how it peaks."""

    requests_per_s: float
    prompt_tokens: Distribution
    output_tokens: Distribution
    peak_factor: float = 1.0
    headroom: float = 0.0
    survive_region_loss: bool = False
    seed: int = 0

    @functools.cached_property
    def sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """Prompt and output tokens of a seeded pool of requests, cycled by the simulation."""
        rng = np.random.default_rng([self.seed, 7])
        prompts = self.prompt_tokens.sample(rng, POOL_SIZE)
        outputs = self.output_tokens.sample(rng, POOL_SIZE)
        return prompts, outputs

    @property
    def mean_output_tokens(self) -> float:
        return float(self.sizes[1].mean())

    @property
    def context_tokens(self) -> float:
        """Mean tokens in a sequence's KV cache over its decode steps."""
        prompts, outputs = self.sizes
        return float(prompts.mean() + outputs.mean() / 2)


@dataclass(frozen=True)
class Evaluation:
    """One simulated allocation: instances per pool and what the simulator predicts."""

    instances: tuple[int, ...]
    requests_per_s: float
    figures: dict[str, float | None]
    missed: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(self.instances)

    @property
    def meets(self) -> bool:
        return not self.missed


@dataclass
class RegionSizing:
    region: RegionShape
    average_rps: float
    peak_rps: float
    peak: Evaluation
    average: Evaluation
    tried: list[Evaluation] = field(default_factory=list)
    feasible: bool = True
    idle_ttft_p99_s: float | None = None  # the prefill floor: TTFT P99 with no queue at all


class Planner:
    """Sizes regions by simulating candidate allocations; remembers what it simulated."""

    def __init__(
        self,
        demand: Demand,
        slo: Sequence[SloLimit],
        *,
        routing: str = "least_outstanding_requests",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.demand, self.slo, self.routing = demand, slo, routing
        self.prompts, self.outputs = demand.sizes
        self.progress = progress or (lambda message: None)
        self._cache: dict[tuple, Evaluation] = {}

    # --- loads ---------------------------------------------------------------------------

    def region_loads(self, regions: Sequence[RegionShape]) -> dict[str, tuple[float, float]]:
        """(average, peak) requests/s of every region."""
        total_weight = sum(region.weight for region in regions)
        demand = self.demand
        loads = {}
        for region in regions:
            share = region.weight / total_weight
            average = demand.requests_per_s * share
            peak = average * demand.peak_factor
            if demand.survive_region_loss and len(regions) > 1:
                for lost in regions:
                    if lost is region:
                        continue
                    remaining = total_weight - lost.weight
                    peak = max(
                        peak, demand.requests_per_s * demand.peak_factor * region.weight / remaining
                    )
            loads[region.name] = (average, peak * (1 + demand.headroom))
        return loads

    # --- one region ----------------------------------------------------------------------

    def size_region(self, region: RegionShape, average_rps: float, peak_rps: float) -> RegionSizing:
        tried: list[Evaluation] = []
        peak, feasible = self.fewest(region, peak_rps, tried)
        average, _ = self.fewest(region, average_rps, tried)
        # Around the answer too, so the plot shows what fewer or more instances would give.
        for factor in SWEEP:
            self.evaluate(region, max(1, round(peak.total * factor)), peak_rps, tried)
        floor = self.idle_ttft_ms(region, "p99") / 1000.0
        return RegionSizing(region, average_rps, peak_rps, peak, average, tried, feasible, floor)

    def idle_ttft_ms(self, region: RegionShape, point: str) -> float:
        """TTFT (``p99``, ``mean``...) with every request alone on the fastest pool: no fleet
        of any size does better."""
        fastest = math.inf
        for pool in region.pools:
            prefill = np.array([pool.profile.prefill_s(int(p)) for p in self.prompts]) * 1000.0
            value = getattr(distribution(prefill), point)
            fastest = min(fastest, value if value is not None else math.inf)
        return fastest

    def fewest(
        self, region: RegionShape, rate: float, tried: list[Evaluation]
    ) -> tuple[Evaluation, bool]:
        """The smallest allocation that meets the SLO at ``rate`` (bisection on the total).

        Returns the best found and whether the SLO can be met at all: when even a fleet
        far above the load misses it, the prefill of a long prompt alone is too slow.
        """
        capacity = sum(pool.share * self.instance_rps(pool) for pool in region.pools)
        if any(
            self.idle_ttft_ms(region, limit.point) > limit.limit_ms
            for limit in self.slo
            if limit.metric == "ttft_ms"
        ):
            # Hopeless whatever the size: show what a generous fleet gives instead of searching.
            return self.evaluate(region, math.ceil(rate / capacity / 0.5), rate, tried), False
        low = max(1, math.floor(rate / capacity)) if capacity > 0 else 1
        high = max(low + 1, math.ceil(rate / capacity / 0.7))
        best = self.evaluate(region, high, rate, tried)
        while not best.meets:
            low = high
            if high >= min(MAX_INSTANCES, 8 * max(1, math.ceil(rate / capacity))):
                return best, False
            high = math.ceil(high * 1.5)
            best = self.evaluate(region, high, rate, tried)
        while high - low > max(1, PRECISION * high):
            middle = (low + high) // 2
            candidate = self.evaluate(region, middle, rate, tried)
            if candidate.meets:
                high, best = middle, candidate
            else:
                low = middle
        return best, True

    def instance_rps(self, pool: PoolShape) -> float:
        """Requests/s one instance of ``pool`` serves with every replica saturated."""
        per_replica = pool.profile.saturated_tokens_per_s(
            float(self.prompts.mean()), float(self.outputs.mean())
        )
        return pool.replicas_per_instance * per_replica / float(self.outputs.mean())

    def allocate(self, region: RegionShape, total: int) -> tuple[int, ...]:
        """``total`` instances split by the pools' shares (largest remainder, one each at least)."""
        pools = region.pools
        if total < len(pools):
            total = len(pools)
        exact = [pool.share * total for pool in pools]
        counts = [max(1, math.floor(value)) for value in exact]
        order = sorted(
            range(len(pools)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True
        )
        for index in order:
            if sum(counts) >= total:
                break
            counts[index] += 1
        return tuple(counts)

    def evaluate(
        self, region: RegionShape, total: int, rate: float, tried: list[Evaluation]
    ) -> Evaluation:
        instances = self.allocate(region, total)
        key = (
            tuple((p.instance_type, p.replicas_per_instance, p.profile) for p in region.pools),
            instances,
            round(rate, 9),
        )
        cached = self._cache.get(key)
        if cached is None:
            self.progress(
                f"{region.name}: simulating {sum(instances)} instances at {rate:.1f} req/s"
            )
            cached = self._cache[key] = self._simulate(region, instances, rate)
        tried.append(cached)
        return cached

    def _simulate(self, region: RegionShape, instances: tuple[int, ...], rate: float) -> Evaluation:
        replicas: list[ServerProfile] = []
        for pool, count in zip(region.pools, instances, strict=True):
            replicas += [pool.profile] * (count * pool.replicas_per_instance)
        mean_e2e = float(self.outputs.mean()) * max(
            p.profile.decode_step_s(p.profile.slots) for p in region.pools
        )
        warmup = min(120.0, max(20.0, 5 * mean_e2e))
        measured = min(MAX_SIMULATED_S, max(MIN_SIMULATED_S, MEASURED_REQUESTS / rate))
        rng = np.random.default_rng([self.demand.seed, 11])
        horizon = warmup + measured
        arrivals = np.cumsum(rng.exponential(1.0 / rate, size=int(rate * horizon * 1.1) + 64))
        arrivals = arrivals[arrivals < horizon]
        run = Simulation(replicas, routing=self.routing, seed=self.demand.seed).run(
            Load(arrivals=arrivals),
            prompt_tokens=self.prompts,
            output_tokens=self.outputs,
            warmup_s=warmup,
            window=(warmup, horizon),
        )
        step = step_summary(run, open_loop=True)
        saturated_rps = sum(
            count * self.instance_rps(pool)
            for pool, count in zip(region.pools, instances, strict=True)
        )
        saturated = saturated_rps * float(self.outputs.mean()) * 60.0
        figures = {
            "ttft_p99": _seconds(step.latency["ttft_ms"].p99),
            "itl_p99": _seconds(step.latency["itl_ms"].p99),
            "e2e_p99": _seconds(step.latency["e2e_ms"].p99),
            "ttft_p50": _seconds(step.latency["ttft_ms"].p50),
            "output_tokens_per_min": step.output_tokens_per_min,
            # Of what the replicas would give with queues always full.
            "utilisation": step.output_tokens_per_min / saturated if saturated else None,
        }
        return Evaluation(instances, rate, figures, tuple(missed_limits(self.slo, step)))


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000.0
