"""The planner: loads per region, the smallest allocation meeting an SLO, the fleet-file diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferfleet.cli.bench.config import Distribution, parse_slo
from inferfleet.cli.sizing.plan_report import plan_results, suggested_bounds, yaml_diff
from inferfleet.cli.sizing.planner import (
    Demand,
    Planner,
    PoolShape,
    RegionShape,
    describe_slo,
    parse_load,
)
from inferfleet.cli.sizing.prices import load_prices
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.infra.yaml_source import load_yaml

FAST = ServerProfile(
    slots=8,
    prefill_base_s=0.02,
    prefill_per_token_s=0.0002,
    decode_base_s=0.02,
    decode_per_sequence_s=0.001,
)
SLOW = FAST.model_copy(update={"decode_base_s": 0.04, "prefill_per_token_s": 0.0004})


def pool(index: int, profile: ServerProfile, share: float, price: float = 10.0) -> PoolShape:
    return PoolShape(
        index=index,
        instance_type=f"type-{index}",
        replicas_per_instance=2,
        chips_per_instance=4,
        profile=profile,
        share=share,
        price_per_hour=price,
        current_min=1,
        current_max=10,
    )


def demand(rate: float = 20.0, **kwargs: object) -> Demand:
    return Demand(
        rate,
        Distribution.parse("lognormal:200:0.3"),
        Distribution.parse("lognormal:60:0.3"),
        **kwargs,
    )  # type: ignore[arg-type]


def test_loads_parse_with_units_and_refuse_the_rest() -> None:
    assert parse_load("3Mtok/min", 250.0) == pytest.approx(200.0)
    assert parse_load("3000000tok/min", 250.0) == pytest.approx(200.0)
    assert parse_load("1200req/min", 1.0) == pytest.approx(20.0)
    for bad in ("3 million tokens", "0req/s", "5tok"):
        with pytest.raises(ValueError, match="load"):
            parse_load(bad, 250.0)
    assert describe_slo(parse_slo("ttft_p99=1s,itl_p50=40ms")) == "ttft_p99<=1000ms, itl_p50<=40ms"


def test_region_loads_split_by_weight_and_grow_when_a_region_is_lost() -> None:
    regions = [
        RegionShape(name, (pool(0, FAST, 1.0),), weight)
        for name, weight in (("a", 2.0), ("b", 1.0), ("c", 1.0))
    ]
    plain = Planner(
        demand(100.0, peak_factor=2.0, headroom=0.1), parse_slo("ttft_p99=1s")
    ).region_loads(regions)
    assert plain["a"] == pytest.approx((50.0, 50.0 * 2 * 1.1))
    surviving = Planner(
        demand(100.0, peak_factor=2.0, survive_region_loss=True), parse_slo("ttft_p99=1s")
    ).region_loads(regions)
    # Losing a (weight 2 of 4), b and c share the peak of 200 req/s half and half.
    assert surviving["b"] == pytest.approx((25.0, 100.0))
    # Losing b or c, a carries 2/3 of it.
    assert surviving["a"] == pytest.approx((50.0, 200.0 * 2 / 3))


def test_the_plan_meets_the_slo_and_one_instance_fewer_would_not() -> None:
    region = RegionShape("r", (pool(0, FAST, 2 / 3), pool(1, SLOW, 1 / 3)), 1.0)
    planner = Planner(demand(30.0), parse_slo("ttft_p99=350ms"))
    sizing = planner.size_region(region, 10.0, 30.0)

    assert sizing.feasible and sizing.peak.meets and sizing.average.meets
    assert sizing.peak.instances[0] >= sizing.peak.instances[1]
    fewer = planner.evaluate(region, sizing.peak.total - 1, 30.0, [])
    assert not fewer.meets
    assert sizing.average.total < sizing.peak.total


def test_an_slo_below_the_prefill_of_the_longest_prompts_is_reported_infeasible() -> None:
    region = RegionShape("r", (pool(0, FAST, 1.0),), 1.0)
    planner = Planner(demand(5.0), parse_slo("ttft_p99=50ms"))
    assert planner.idle_ttft_ms(region, "p99") > 50
    sizing = planner.size_region(region, 5.0, 5.0)
    assert not sizing.feasible
    assert sizing.peak.missed == ("ttft_p99",)


def test_results_bounds_and_the_fleet_file_diff() -> None:
    east = RegionShape("east", (pool(0, FAST, 0.5), pool(1, SLOW, 0.5, price=20.0)), 1.0)
    west = RegionShape("west", (pool(0, FAST, 1.0),), 1.0)
    planner = Planner(demand(40.0), parse_slo("ttft_p99=500ms"))
    loads = planner.region_loads([east, west])
    sizings = [planner.size_region(region, *loads[region.name]) for region in (east, west)]
    results = plan_results(
        "assistant", sizings, demand(40.0), parse_slo("ttft_p99=500ms"), load_prices()
    )

    east_row = results["regions"][0]
    first = east_row["pools"][0]["peak"]
    assert first["chips"] == first["instances"] * 4 and first["replicas"] == first["instances"] * 2
    assert east_row["peak"]["dollars_per_hour"] == pytest.approx(
        10.0 * first["instances"] + 20.0 * east_row["pools"][1]["peak"]["instances"]
    )
    assert results["totals"]["peak"]["chips"] == sum(r["peak"]["chips"] for r in results["regions"])
    bounds = suggested_bounds(sizings)
    assert bounds[0]["max"] == max(sizings[0].peak.instances[0], sizings[1].peak.instances[0])

    text = (
        "services:\n  assistant:\n    pools:\n"
        "      - {instance_type: a, tensor_parallel: 1, max: 10}\n"
        "      - instance_type: b\n        tensor_parallel: 1\n        min: 1\n        max: 10\n"
    )
    document = load_yaml(text)
    diff = yaml_diff(Path("fleet.yaml"), text, document.lines, "assistant", bounds)
    assert f"+      - {{instance_type: a, tensor_parallel: 1, min: {bounds[0]['min']}, " in diff
    assert f"+        max: {bounds[1]['max']}" in diff
    assert f"+        min: {bounds[1]['min']}" in diff
