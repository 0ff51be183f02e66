"""The fleet's autoscaling, replayed inside a simulated region, minute by minute.

The deployed service scales each pool's ECS service by target tracking on the ALB's
``RequestCountPerTarget`` (requests per healthy target per minute, the fleet file's
``autoscaling.requests_per_target_per_minute``), between the pool's ``min`` and ``max``,
with its scale-out and scale-in cooldowns. The simulation models that policy as
target tracking states it, not CloudWatch's every detail:

- Every minute the metric is the requests the region received in the minute over the
  instances in service. A pool wants ``ceil(capacity * metric / target)`` instances
  (its capacity counts the ones still starting), within ``min``..``max``.
- It scales out when it wanted more for ``SCALE_OUT_MINUTES`` minutes in a row and its
  last scale-out is a cooldown old; it scales in when it wanted fewer for
  ``SCALE_IN_MINUTES`` minutes and its last scaling is a scale-in cooldown old (the
  alarms target tracking creates: 3 of 3 and 15 of 15 one-minute datapoints).
- A new instance serves ``startup_s`` after it is asked for: the plan's health-check
  grace period, sized for the container's start, the weights' download and a compile.
  An instance scaled in stops getting requests at once and finishes what it holds.

Without ``autoscale`` the pools keep their size and only the timeline is recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# One datapoint a minute: the period of ALB metrics and of the timeline.
METRIC_PERIOD_S = 60.0
SCALE_OUT_MINUTES = 3
SCALE_IN_MINUTES = 15
_OFF, _STARTING, _SERVING, _DRAINING = 0, 1, 2, 3


@dataclass(frozen=True)
class ScalingPolicy:
    """A service's scaling policy, as its fleet plan resolved it."""

    requests_per_target_per_minute: float
    scale_out_cooldown_s: float
    scale_in_cooldown_s: float
    startup_s: float


@dataclass(frozen=True)
class ScaledPool:
    """One pool of the region: its name in the timeline, bounds, start size, replicas."""

    name: str
    minimum: int
    maximum: int
    start: int
    replicas_per_instance: int


@dataclass
class _PoolState:
    pool: ScaledPool
    first_replica: int
    states: list[int]
    ready_at: list[float]
    wanted_more: int = 0
    wanted_fewer: int = 0
    last_out: float = -math.inf
    last_change: float = -math.inf

    def count(self, *states: int) -> int:
        return sum(1 for state in self.states if state in states)

    def replicas(self, instance: int) -> range:
        start = self.first_replica + instance * self.pool.replicas_per_instance
        return range(start, start + self.pool.replicas_per_instance)


@dataclass
class TimelineSample:
    """The region at the end of one minute (seconds from the start of the run)."""

    at_s: float
    requests: int
    requests_per_target: float | None
    in_service: dict[str, int]
    starting: dict[str, int]
    queued: int
    in_flight: int


@dataclass
class RegionScaler:
    """Instances of each pool and their state; the simulation asks it every minute.

    Replicas are laid out pool after pool, ``maximum`` instances of each, so replica
    ``r`` belongs to one instance of one pool whatever is in service.
    """

    pools: list[ScaledPool]
    policy: ScalingPolicy | None
    samples: list[TimelineSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._states: list[_PoolState] = []
        first = 0
        for pool in self.pools:
            states = [_SERVING if i < pool.start else _OFF for i in range(pool.maximum)]
            self._states.append(_PoolState(pool, first, states, [0.0] * pool.maximum))
            first += pool.maximum * pool.replicas_per_instance
        self.replica_count = first

    @property
    def period_s(self) -> float:
        return METRIC_PERIOD_S

    def serving(self) -> list[bool]:
        """Which replicas take requests at the start."""
        flags = [False] * self.replica_count
        for state in self._states:
            for instance, value in enumerate(state.states):
                for replica in state.replicas(instance):
                    flags[replica] = value == _SERVING
        return flags

    def tick(
        self, now: float, requests: int, queued: int, in_flight: list[int]
    ) -> tuple[list[tuple[float, int]], list[int]]:
        """One minute ended at ``now`` with ``requests`` received: record it, then decide.

        ``in_flight`` holds each replica's requests. Returns the replicas to bring into
        service (with the moment each is ready) and the replicas to take out now.
        """
        ready, drained = [], []
        for state in self._states:
            for instance, value in enumerate(state.states):
                replicas = state.replicas(instance)
                if value == _STARTING and state.ready_at[instance] <= now:
                    state.states[instance] = _SERVING
                elif value == _DRAINING and not any(in_flight[r] for r in replicas):
                    state.states[instance] = _OFF
        serving = sum(state.count(_SERVING) for state in self._states)
        metric = requests / serving if serving else None
        self.samples.append(
            TimelineSample(
                at_s=round(now, 3),
                requests=requests,
                requests_per_target=None if metric is None else round(metric, 3),
                in_service={s.pool.name: s.count(_SERVING) for s in self._states},
                starting={s.pool.name: s.count(_STARTING) for s in self._states},
                queued=queued,
                in_flight=sum(in_flight),
            )
        )
        if self.policy is None or metric is None:
            return ready, drained
        for state in self._states:
            self._decide(state, now, metric, ready, drained)
        return ready, drained

    def _decide(
        self,
        state: _PoolState,
        now: float,
        metric: float,
        ready: list[tuple[float, int]],
        drained: list[int],
    ) -> None:
        policy, pool = self.policy, state.pool
        assert policy is not None
        capacity = state.count(_SERVING, _STARTING)
        wanted = math.ceil(capacity * metric / policy.requests_per_target_per_minute - 1e-9)
        wanted = min(pool.maximum, max(pool.minimum, wanted))
        state.wanted_more = state.wanted_more + 1 if wanted > capacity else 0
        state.wanted_fewer = state.wanted_fewer + 1 if wanted < capacity else 0
        if (
            state.wanted_more >= SCALE_OUT_MINUTES
            and now - state.last_out >= policy.scale_out_cooldown_s
        ):
            for instance, value in enumerate(state.states):
                if capacity >= wanted:
                    break
                if value == _OFF:
                    state.states[instance] = _STARTING
                    state.ready_at[instance] = now + policy.startup_s
                    ready += [(now + policy.startup_s, r) for r in state.replicas(instance)]
                    capacity += 1
            state.last_out = state.last_change = now
            state.wanted_more = 0
        elif (
            state.wanted_fewer >= SCALE_IN_MINUTES
            and now - state.last_change >= policy.scale_in_cooldown_s
        ):
            # The newest instances go first, those still starting before those serving.
            for wanted_state in (_STARTING, _SERVING):
                for instance in reversed(range(pool.maximum)):
                    if capacity <= wanted or self._last_in_service(state, instance):
                        break
                    if state.states[instance] == wanted_state:
                        state.states[instance] = _DRAINING if wanted_state == _SERVING else _OFF
                        drained += list(state.replicas(instance))
                        capacity -= 1
            state.last_change = now
            state.wanted_fewer = 0

    def _last_in_service(self, state: _PoolState, instance: int) -> bool:
        """The region keeps one instance serving: with none, the balancer has no target."""
        serving = sum(s.count(_SERVING) for s in self._states)
        return state.states[instance] == _SERVING and serving <= 1
