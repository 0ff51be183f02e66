"""The simulated target tracking of a region's pools, minute by minute."""

from __future__ import annotations

from inferfleet.cli.sizing.autoscaling import (
    SCALE_IN_MINUTES,
    SCALE_OUT_MINUTES,
    RegionScaler,
    ScaledPool,
    ScalingPolicy,
)

POLICY = ScalingPolicy(
    requests_per_target_per_minute=60, scale_out_cooldown_s=60, scale_in_cooldown_s=300,
    startup_s=150,
)  # fmt: skip


def scaler(start: int = 1, minimum: int = 1, maximum: int = 6) -> RegionScaler:
    return RegionScaler([ScaledPool("inf2.xlarge", minimum, maximum, start, 2)], POLICY)


def minutes(region: RegionScaler, requests: list[int], first: int = 1) -> list[tuple]:
    """Feed one minute's requests a minute; (ready, taken out) of each."""
    idle = [0] * region.replica_count
    return [region.tick(60.0 * (first + k), count, 0, idle) for k, count in enumerate(requests)]


def test_scale_out_waits_three_minutes_then_asks_for_capacity_to_the_target() -> None:
    region = scaler()
    decisions = minutes(region, [180] * SCALE_OUT_MINUTES)
    assert [ready for ready, _ in decisions[:-1]] == [[], []]
    ready, taken_out = decisions[-1]
    # 180 requests a minute on one instance against 60 each: three instances, two new,
    # each of two replicas, ready after the startup.
    assert taken_out == [] and sorted(replica for _, replica in ready) == [2, 3, 4, 5]
    assert {moment for moment, _ in ready} == {60.0 * SCALE_OUT_MINUTES + 150}
    # Until they are ready they count as capacity: no second scale-out for the same load.
    assert minutes(region, [180] * 2, first=SCALE_OUT_MINUTES + 1) == [([], [])] * 2
    assert region.samples[-1].starting == {"inf2.xlarge": 2}
    assert region.samples[-1].in_service == {"inf2.xlarge": 1}
    minutes(region, [180], first=SCALE_OUT_MINUTES + 3)
    assert region.samples[-1].in_service == {"inf2.xlarge": 3}
    assert region.samples[-1].requests_per_target == 60.0


def test_scale_out_stops_at_max_and_scale_in_at_min_after_fifteen_quiet_minutes() -> None:
    region = scaler(start=2, maximum=3)
    ready, _ = minutes(region, [6000] * SCALE_OUT_MINUTES)[-1]
    assert len(ready) == 2  # one instance more: max is 3
    minutes(region, [180] * 5, first=4)  # ready by now, and at the target
    assert region.samples[-1].in_service == {"inf2.xlarge": 3}
    decisions = minutes(region, [10] * SCALE_IN_MINUTES, first=9)
    assert all(not taken for _, taken in decisions[:-1])
    # The newest instances go first, down to min; what they hold they finish.
    assert decisions[-1][1] == [4, 5, 2, 3]
    assert region.samples[-1].in_service == {"inf2.xlarge": 3}  # recorded before deciding
    minutes(region, [10], first=9 + SCALE_IN_MINUTES)
    assert region.samples[-1].in_service == {"inf2.xlarge": 1}


def test_without_a_policy_the_pools_keep_their_size() -> None:
    region = RegionScaler([ScaledPool("trn1.2xlarge", 1, 4, 2, 1)], None)
    assert region.serving() == [True, True, False, False]
    assert all(decision == ([], []) for decision in minutes(region, [5000] * 20))
    assert {sample.in_service["trn1.2xlarge"] for sample in region.samples} == {2}


def test_the_last_instance_in_service_stays() -> None:
    region = scaler(start=1, minimum=0)
    decisions = minutes(region, [0] * (SCALE_IN_MINUTES + 5))
    assert all(not taken for _, taken in decisions)
    assert region.samples[-1].in_service == {"inf2.xlarge": 1}
