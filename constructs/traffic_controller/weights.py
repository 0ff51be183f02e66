"""Traffic weights between the regions of one service, decided each control period.

A pure function (standard library only): :func:`decide` takes the weights in force, each
region's signals, the policy, the state it returned last period and the manual overrides,
and returns the next weights with a reason per region. Weights are whole numbers that sum
to :data:`TOTAL` (a percentage per region); Global Accelerator's traffic dials come from
them through :func:`traffic_dials`.

How a region's weight is chosen, first rule that applies:

1. **Manual override** (from SSM Parameter Store, until it expires): drained regions get 0,
   pinned ones their pinned weight, at once.
2. **Signals missing** (no healthy-host figure this period): the region keeps its weight.
   Missing data is not evidence of trouble, and moving blind could drain a healthy
   region; a region that really fails still loses its DNS answers through its health check.
3. **Health**: no healthy host, healthy hosts below ``min_healthy_fraction`` of desired, or
   a 5xx rate above ``max_error_rate``: drained to 0 at once (a health drain). It comes
   back after ``recover_periods`` healthy periods, ramping up by ``step``.
4. **Objective**: TTFT P99 above ``objective_s`` for ``breach_periods`` periods: drained
   towards ``floor`` (a trickle keeps its signals fresh), by ``step`` per period. It serves
   normally again once P99 stayed under ``recover_ratio`` x objective for
   ``recover_periods`` periods.
5. **Capacity**: the regions serving normally share the rest in proportion to usable
   capacity — healthy hosts plus ``headroom_credit`` per host its Auto Scaling groups may
   still add (in service vs max) — with ``floor`` each at least.

Then, towards that split:

- **Bounded step**: a region's weight moves by at most ``step`` per period. Health drains
  and overrides move at once, and the regions that take over what they shed may then move
  by more than ``step``: the weight has to go somewhere.
- **Hysteresis**: the controller keeps heading for the split it chose until the split the
  signals ask for differs from it by more than ``retarget_band`` points in some region (or
  a region's status changes), so noise in the signals does not make weights flap.
- **Never all zero**: weights always sum to :data:`TOTAL`. When every region is drained or
  unhealthy, the one with the most healthy hosts keeps serving, and the reason says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

TOTAL = 100
DIAL_MAX = 100


class Condition(StrEnum):
    """What a region's signals say, with hysteresis; kept between periods."""

    SERVING = "serving"
    BREACHING = "breaching"
    UNHEALTHY = "unhealthy"


class Status(StrEnum):
    """Why a region has its weight this period."""

    SERVING = "serving"
    BREACHING = "breaching"
    UNHEALTHY = "unhealthy"
    STALE = "stale"
    PINNED = "pinned"
    DRAINED = "drained"


_MOVES_AT_ONCE = frozenset({Status.UNHEALTHY, Status.PINNED, Status.DRAINED})


@dataclass(frozen=True)
class WeightPolicy:
    """How one service's weights react to its signals. Defaults are the production choice.

    :param objective_s: TTFT P99 (the ALB's target response time P99) a region must stay
        under. Default: 1 s, the objective of the LLM fleets this project answers to.
    :param step: largest change of a region's weight per period, in points of 100. Default: 20.
    :param floor: least weight of a region that is healthy, including one breaking its
        objective, so its signals stay fresh. Default: 5.
    :param breach_periods: periods over the objective before a region is drained. Default: 1.
    :param recover_periods: periods of good signals before a drained region serves again.
        Default: 3.
    :param recover_ratio: a breaching region recovers under this fraction of the objective.
        Default: 0.8.
    :param min_healthy_fraction: healthy hosts below this fraction of desired is unhealthy.
        Default: 0.5.
    :param max_error_rate: a 5xx fraction of requests above this is unhealthy. Default: 0.05.
    :param headroom_credit: what a host the Auto Scaling groups may still add counts for,
        against one in service. Default: 0.5 (it takes minutes to arrive).
    :param retarget_band: hysteresis, in points: the split is re-chosen only when the signals
        ask for a split this far from it in some region. Default: 10.
    :param requests_per_target_per_minute: the scaling target of the service, for the
        fleet's capacity utilization. Default: none (utilization not computed).
    """

    objective_s: float = 1.0
    step: int = 20
    floor: int = 5
    breach_periods: int = 1
    recover_periods: int = 3
    recover_ratio: float = 0.8
    min_healthy_fraction: float = 0.5
    max_error_rate: float = 0.05
    headroom_credit: float = 0.5
    retarget_band: int = 10
    requests_per_target_per_minute: float | None = None

    def problems(self) -> list[tuple[str, str]]:
        """``(field, message)`` for each setting out of range; the message says the fix."""
        found = []
        if not (math.isfinite(self.objective_s) and self.objective_s > 0):
            found.append(("objective_s", "must be a positive number of seconds"))
        if not 1 <= self.step <= TOTAL:
            found.append(("step", f"must be 1..{TOTAL} weight points per period"))
        if not 0 <= self.floor <= 20:
            found.append(("floor", "must be 0..20 weight points"))
        for name in ("breach_periods", "recover_periods"):
            if not 1 <= getattr(self, name) <= 60:
                found.append((name, "must be 1..60 periods"))
        if not 0 < self.recover_ratio <= 1:
            found.append(("recover_ratio", "must be above 0 and at most 1"))
        if not 0 < self.min_healthy_fraction <= 1:
            found.append(("min_healthy_fraction", "must be above 0 and at most 1"))
        if not 0 < self.max_error_rate <= 1:
            found.append(("max_error_rate", "must be above 0 and at most 1"))
        if not 0 <= self.headroom_credit <= 1:
            found.append(("headroom_credit", "must be 0..1"))
        if not 0 <= self.retarget_band < TOTAL:
            found.append(("retarget_band", f"must be 0..{TOTAL - 1} weight points"))
        target = self.requests_per_target_per_minute
        if target is not None and not target > 0:
            found.append(("requests_per_target_per_minute", "must be above 0"))
        return found

    def periods_to_shift(self) -> int:
        """Periods the slowest drain (objective, by ``step``) takes from all to ``floor``."""
        return math.ceil((TOTAL - self.floor) / self.step)


@dataclass(frozen=True)
class RegionSignals:
    """One period of one region's figures; ``None`` where CloudWatch had no data."""

    ttft_p99_s: float | None = None
    healthy_hosts: float | None = None
    desired_hosts: float | None = None
    requests_per_target: float | None = None
    error_rate: float | None = None
    in_service: float | None = None
    max_size: float | None = None

    def headroom(self) -> float:
        if self.in_service is None or self.max_size is None:
            return 0.0
        return max(0.0, self.max_size - self.in_service)


@dataclass(frozen=True)
class Override:
    """An operator's word on a region, until ``expires_at`` (epoch seconds)."""

    action: str  # "drain" or "pin"
    expires_at: float
    weight: int | None = None
    reason: str = ""

    def active(self, now: float) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class RegionState:
    """What the controller remembers of a region between periods."""

    condition: Condition = Condition.SERVING
    breach_streak: int = 0
    recover_streak: int = 0
    status: Status | None = None
    target: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegionState:
        status = data.get("status")
        return cls(
            condition=Condition(data.get("condition", Condition.SERVING)),
            breach_streak=int(data.get("breach_streak", 0)),
            recover_streak=int(data.get("recover_streak", 0)),
            status=Status(status) if status else None,
            target=data.get("target"),
        )


@dataclass(frozen=True)
class RegionDecision:
    region: str
    weight: int
    previous: int
    target: int
    status: Status
    reason: str
    capacity: float | None
    signals: RegionSignals = field(default_factory=RegionSignals)


@dataclass(frozen=True)
class Decision:
    weights: dict[str, int]
    regions: dict[str, RegionDecision]
    state: dict[str, RegionState]
    retargeted: bool
    fleet_utilization: float | None

    @property
    def changed(self) -> bool:
        return any(entry.weight != entry.previous for entry in self.regions.values())

    def as_log(self) -> dict[str, Any]:
        """The decision as one JSON-ready record: weights, inputs and reason per region."""
        return {
            "weights": dict(self.weights),
            "changed": self.changed,
            "retargeted": self.retargeted,
            "fleet_utilization": self.fleet_utilization,
            "regions": {
                name: {
                    "weight": entry.weight,
                    "previous": entry.previous,
                    "target": entry.target,
                    "status": str(entry.status),
                    "reason": entry.reason,
                    "capacity": entry.capacity,
                    "signals": asdict(entry.signals),
                }
                for name, entry in self.regions.items()
            },
        }


def decide(
    current: Mapping[str, int],
    signals: Mapping[str, RegionSignals],
    policy: WeightPolicy,
    previous: Mapping[str, RegionState] | None = None,
    overrides: Mapping[str, Override] | None = None,
    *,
    now: float,
) -> Decision:
    """The next weights of the regions in ``current``; see the module docstring for the rules.

    ``current`` may come from outside (a record someone edited): it is first scaled to sum to
    :data:`TOTAL`. Regions without signals get empty ones; overrides of unknown regions are
    ignored.
    """
    if not current:
        raise ValueError("decide needs at least one region")
    regions = sorted(current)
    weights_now = normalise({region: current[region] for region in regions})
    previous = previous or {}
    overrides = overrides or {}
    states: dict[str, RegionState] = {}
    statuses: dict[str, Status] = {}
    reasons: dict[str, str] = {}
    for region in regions:
        state, status, reason = _evaluate(
            previous.get(region, RegionState()),
            signals.get(region, RegionSignals()),
            overrides.get(region),
            policy,
            now,
        )
        states[region], statuses[region], reasons[region] = state, status, reason

    capacities = {
        region: _capacity(signals.get(region, RegionSignals()), policy) for region in regions
    }
    desired, fallback = _desired_split(weights_now, statuses, capacities, overrides, policy, now)
    if fallback is not None:
        reasons[fallback] += (
            "; keeps serving: every region is drained or unhealthy and one must take traffic"
        )
    target, retargeted = _hysteresis(desired, statuses, previous, policy)
    weights = _move(weights_now, target, statuses, policy.step)

    entries = {}
    for region in regions:
        states[region] = replace(states[region], status=statuses[region], target=target[region])
        entries[region] = RegionDecision(
            region=region,
            weight=weights[region],
            previous=weights_now[region],
            target=target[region],
            status=statuses[region],
            reason=reasons[region],
            capacity=capacities[region],
            signals=signals.get(region, RegionSignals()),
        )
    return Decision(
        weights=weights,
        regions=entries,
        state=states,
        retargeted=retargeted,
        fleet_utilization=_fleet_utilization(signals, statuses, policy),
    )


def _evaluate(
    state: RegionState,
    signals: RegionSignals,
    override: Override | None,
    policy: WeightPolicy,
    now: float,
) -> tuple[RegionState, Status, str]:
    """The region's condition (with hysteresis) and the status that sets its weight."""
    if signals.healthy_hosts is None:
        condition, reason = state, "no healthy-host figure this period: holds its weight"
        status = Status.STALE
    else:
        condition, reason = _condition(state, signals, policy)
        status = Status(condition.condition)
    if override is not None and override.active(now):
        until = f"until {_clock(override.expires_at)}"
        note = f" ({override.reason})" if override.reason else ""
        if override.action == "drain":
            return condition, Status.DRAINED, f"drained by operator {until}{note}; {reason}"
        return (
            condition,
            Status.PINNED,
            f"pinned to {override.weight} by operator {until}{note}; {reason}",
        )
    return condition, status, reason


def _condition(
    state: RegionState, signals: RegionSignals, policy: WeightPolicy
) -> tuple[RegionState, str]:
    problem = _health_problem(signals, policy)
    if problem is not None:
        return RegionState(Condition.UNHEALTHY), f"health drain: {problem}"
    if state.condition is Condition.UNHEALTHY:
        streak = state.recover_streak + 1
        if streak < policy.recover_periods:
            return (
                RegionState(Condition.UNHEALTHY, recover_streak=streak),
                f"healthy again for {streak} of {policy.recover_periods} periods",
            )
        return RegionState(Condition.SERVING), "healthy again: ramping up by capacity"

    ttft = signals.ttft_p99_s
    figure = "no TTFT samples" if ttft is None else f"TTFT P99 {ttft:.3f} s"
    objective = f"objective {policy.objective_s:g} s"
    if state.condition is Condition.BREACHING:
        if ttft is not None and ttft < policy.recover_ratio * policy.objective_s:
            streak = state.recover_streak + 1
            if streak >= policy.recover_periods:
                return RegionState(Condition.SERVING), f"{figure}: recovered ({objective})"
            return (
                RegionState(Condition.BREACHING, recover_streak=streak),
                f"{figure}: under {policy.recover_ratio:g} x {objective} for {streak} of "
                f"{policy.recover_periods} periods",
            )
        return (
            RegionState(Condition.BREACHING),
            f"{figure}: not yet under {policy.recover_ratio:g} x {objective}",
        )
    if ttft is not None and ttft > policy.objective_s:
        streak = state.breach_streak + 1
        if streak >= policy.breach_periods:
            return RegionState(Condition.BREACHING), f"{figure} over {objective}: draining"
        return (
            RegionState(Condition.SERVING, breach_streak=streak),
            f"{figure} over {objective} for {streak} of {policy.breach_periods} periods",
        )
    return RegionState(Condition.SERVING), f"{figure} within {objective}"


def _health_problem(signals: RegionSignals, policy: WeightPolicy) -> str | None:
    healthy = signals.healthy_hosts
    assert healthy is not None
    if healthy <= 0:
        return "no healthy host"
    desired = signals.desired_hosts
    if desired and healthy < policy.min_healthy_fraction * desired:
        return (
            f"{healthy:g} of {desired:g} desired hosts healthy "
            f"(under {policy.min_healthy_fraction:g})"
        )
    errors = signals.error_rate
    if errors is not None and errors > policy.max_error_rate:
        return f"5xx rate {errors:.1%} over {policy.max_error_rate:.1%}"
    return None


def _capacity(signals: RegionSignals, policy: WeightPolicy) -> float | None:
    if signals.healthy_hosts is None:
        return None
    return max(0.0, signals.healthy_hosts) + policy.headroom_credit * signals.headroom()


def _desired_split(
    current: dict[str, int],
    statuses: dict[str, Status],
    capacities: dict[str, float | None],
    overrides: Mapping[str, Override],
    policy: WeightPolicy,
    now: float,
) -> tuple[dict[str, int], str | None]:
    """Where the weights should be, ignoring the step; and the region kept up as a last resort."""
    fixed: dict[str, int] = {}
    for region, status in statuses.items():
        if status in (Status.DRAINED, Status.UNHEALTHY):
            fixed[region] = 0
        elif status is Status.PINNED:
            fixed[region] = max(0, min(TOTAL, int(overrides[region].weight or 0)))
        elif status is Status.STALE:
            fixed[region] = current[region]
    flexible = [region for region in statuses if region not in fixed]
    if sum(fixed.values()) > TOTAL or (not flexible and sum(fixed.values()) > 0):
        # Pins and held weights that cannot all be met are scaled to fit.
        return {**apportion(TOTAL, fixed), **dict.fromkeys(flexible, 0)}, None
    if not flexible:
        keeper = max(
            statuses,
            key=lambda region: (
                statuses[region] is not Status.DRAINED,
                capacities[region] or 0.0,
                region,
            ),
        )
        return {region: TOTAL if region == keeper else 0 for region in statuses}, keeper
    remaining = TOTAL - sum(fixed.values())
    serving = [region for region in flexible if statuses[region] is Status.SERVING]
    breaching = [region for region in flexible if statuses[region] is Status.BREACHING]
    desired = dict(fixed)
    if not serving:
        # Every flexible region breaks its objective: draining them all would help no one.
        desired.update(share(remaining, {r: capacities[r] or 0.0 for r in breaching}, 0))
        return desired, None
    trickle = min(policy.floor, remaining // len(flexible))
    desired.update(dict.fromkeys(breaching, trickle))
    rest = remaining - trickle * len(breaching)
    desired.update(share(rest, {r: capacities[r] or 0.0 for r in serving}, trickle))
    return desired, None


def _hysteresis(
    desired: dict[str, int],
    statuses: dict[str, Status],
    previous: Mapping[str, RegionState],
    policy: WeightPolicy,
) -> tuple[dict[str, int], bool]:
    """The previous target while it is close enough to ``desired``; ``desired`` otherwise."""
    before = {region: previous.get(region, RegionState()) for region in desired}
    targets = {region: state.target for region, state in before.items()}
    keep = (
        all(target is not None for target in targets.values())
        and sum(targets.values()) == TOTAL  # type: ignore[arg-type]
        and all(before[region].status is statuses[region] for region in desired)
        and all(
            targets[region] == desired[region]
            for region in desired
            if statuses[region] in (*_MOVES_AT_ONCE, Status.STALE)
        )
        and max(abs(desired[region] - targets[region]) for region in desired)  # type: ignore[operator]
        <= policy.retarget_band
    )
    if keep:
        return dict(targets), False  # type: ignore[arg-type]
    return dict(desired), True


def _move(
    current: dict[str, int], target: dict[str, int], statuses: dict[str, Status], step: int
) -> dict[str, int]:
    """Move towards ``target``: at once for health drains and overrides, by ``step`` otherwise.

    The result still sums to :data:`TOTAL`: when the bounded moves do not balance, the larger
    side moves less; when a move at once freed (or took) weight, the others move past the
    step towards their targets to absorb it.
    """
    moves: dict[str, int] = {}
    for region, now in current.items():
        gap = target[region] - now
        moves[region] = gap if statuses[region] in _MOVES_AT_ONCE else max(-step, min(step, gap))
    bounded = [region for region in current if statuses[region] not in _MOVES_AT_ONCE]
    excess = sum(moves.values())
    while excess != 0:
        direction = 1 if excess > 0 else -1
        # First shrink a bounded move on the side that is too large ...
        shrinkable = [region for region in bounded if moves[region] * direction > 0]
        if shrinkable:
            region = max(shrinkable, key=lambda r: (abs(moves[r]), r))
            moves[region] -= direction
        else:
            # ... then extend a bounded move on the other side, never past its target.
            room = {
                region: (target[region] - current[region] - moves[region]) * -direction
                for region in bounded
            }
            extendable = [region for region in bounded if room[region] > 0]
            if not extendable:
                break
            region = max(extendable, key=lambda r: (room[r], r))
            moves[region] -= direction
        excess -= direction
    weights = {region: current[region] + moves[region] for region in current}
    if sum(weights.values()) != TOTAL:
        # Unreachable for targets that sum to TOTAL; kept so a broken input cannot zero a fleet.
        return normalise(weights)
    return weights


def _fleet_utilization(
    signals: Mapping[str, RegionSignals], statuses: dict[str, Status], policy: WeightPolicy
) -> float | None:
    """Requests now over what every region could carry at full scale (1.0 = out of capacity)."""
    per_target = policy.requests_per_target_per_minute
    if per_target is None:
        return None
    demand = capacity = 0.0
    for region, status in statuses.items():
        figures = signals.get(region, RegionSignals())
        if figures.healthy_hosts is None:
            continue
        if figures.requests_per_target is not None:
            demand += figures.requests_per_target * figures.healthy_hosts
        if status not in (Status.DRAINED, Status.UNHEALTHY):
            capacity += (figures.healthy_hosts + figures.headroom()) * per_target
    if capacity <= 0:
        return None if demand <= 0 else math.inf
    return round(demand / capacity, 4)


def share(total: int, capacities: Mapping[str, float], minimum: int) -> dict[str, int]:
    """``total`` split as ``minimum`` each plus the rest in proportion to ``capacities``."""
    if not capacities:
        return {}
    minimum = min(minimum, total // len(capacities))
    rest = total - minimum * len(capacities)
    weights = capacities if sum(capacities.values()) > 0 else dict.fromkeys(capacities, 1.0)
    return {region: minimum + part for region, part in apportion(rest, weights).items()}


def apportion(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Whole numbers in proportion to ``weights`` that sum to ``total`` (largest remainder)."""
    if not weights:
        return {}
    mass = sum(max(0.0, value) for value in weights.values())
    if mass <= 0:
        weights, mass = dict.fromkeys(weights, 1.0), float(len(weights))
    exact = {key: total * max(0.0, value) / mass for key, value in weights.items()}
    parts = {key: math.floor(value) for key, value in exact.items()}
    left = total - sum(parts.values())
    for key in sorted(exact, key=lambda k: (parts[k] - exact[k], k))[:left]:
        parts[key] += 1
    return parts


def normalise(weights: Mapping[str, float]) -> dict[str, int]:
    """``weights`` scaled to whole numbers summing to :data:`TOTAL` (all zero: equal shares)."""
    exact = all(isinstance(value, int) and value >= 0 for value in weights.values())
    if exact and sum(weights.values()) == TOTAL:
        return dict(weights)  # type: ignore[arg-type]
    return apportion(TOTAL, weights)


def traffic_dials(weights: Mapping[str, int]) -> dict[str, int]:
    """Global Accelerator traffic dials (0..100) for a split: the heaviest region at 100.

    A dial only lowers the share of the endpoint groups near a client, so the split maps onto
    dials relative to the heaviest region; at least one dial is always 100.
    """
    heaviest = max(weights.values())
    if heaviest <= 0:
        return dict.fromkeys(weights, DIAL_MAX)
    return {region: round(DIAL_MAX * weight / heaviest) for region, weight in weights.items()}


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
