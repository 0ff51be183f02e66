"""``inferfleet simulate --config``: a fleet file's service, region by region, SIMULATED."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inferfleet.cli.main import main

FLEET = """\
name: tiny
regions: [us-east-1, us-west-2]
services:
  chat:
    kind: llm
    model: {parameters_b: 8, weights_dtype: int8, max_batch_size: 8}
    pools:
      - {instance_type: inf2.xlarge, tensor_parallel: 2, min: 1, max: 4}
      - {instance_type: trn1.2xlarge, tensor_parallel: 2, min: 2, max: 3,
         regions: [us-east-1]}
"""
SIZES = ("--prompt-tokens", "lognormal:200:0.3", "--output-tokens", "lognormal:100:0.3")


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    return path


def simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        main(["simulate", *args])
    return stopped.value.code or 0, capsys.readouterr().err  # type: ignore[return-value]


def test_each_region_runs_its_pools_at_its_share_of_the_load(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    code, err = simulate(
        capsys, "--config", str(fleet), "--load", "8req/s", "--weights", "us-east-1=3",
        *SIZES, "--duration", "60", "--warmup", "20", "--out", str(out),
    )  # fmt: skip

    assert code == 0, err
    assert "us-east-1: 7 instances, 6.0 req/s" in err and "(SIMULATED)" in err
    results = json.loads((out / "results.json").read_text())
    assert results["target"]["simulated"] is True
    assert results["workload"]["arrival"] == "poisson"
    regions = results["target"]["fleet"]["regions"]
    assert [(r["region"], r["requests_per_s"]) for r in regions] == [
        ("us-east-1", 6.0), ("us-west-2", 2.0),
    ]  # fmt: skip
    # --at max (the default): the fleet file's max of each pool placed in the region.
    assert [[(p["instance_type"], p["instances"]) for p in r["pools"]] for r in regions] == [
        [("inf2.xlarge", 4), ("trn1.2xlarge", 3)], [("inf2.xlarge", 4)],
    ]  # fmt: skip
    steps = results["steps"]
    assert [(s["variant"], s["instances"]) for s in steps] == [
        ("region=us-east-1", 7), ("region=us-west-2", 4),
    ]  # fmt: skip
    mean_output = results["workload"]["mean_output_tokens"]
    for step, region in zip(steps, regions, strict=True):
        assert step["simulated"] and step["valid"]
        # Far below capacity, the fleet delivers what is asked of it (Poisson noise aside).
        asked = region["requests_per_s"] * mean_output * 60
        assert step["output_tokens_per_min"] == pytest.approx(asked, rel=0.15)
        assert all(
            row["instance"].startswith(region["region"] + "/") for row in step["per_instance"]
        )
        assert step["cost_per_million_output_tokens"] > 0
    report = (out / "report.md").read_text()
    assert report.startswith("# inferfleet simulate report\n\n> **SIMULATED.**")


def test_at_min_simulates_the_smallest_fleet_and_queues_grow(fleet: Path) -> None:
    from inferfleet.cli.bench.config import Distribution
    from inferfleet.cli.sizing.figures import step_summary
    from inferfleet.cli.sizing.fleet_run import simulate_fleet
    from inferfleet.cli.sizing.fleet_shapes import fleet_service
    from inferfleet.cli.sizing.prices import PriceLookup, load_prices

    service = fleet_service(
        fleet, None, context_tokens=250.0, price=PriceLookup(load_prices()), weights=None
    )
    shape = {"prompt_tokens": Distribution.parse(SIZES[1]),
             "output_tokens": Distribution.parse(SIZES[3]), "duration_s": 60.0,
             "warmup_s": 20.0, "seed": 0}  # fmt: skip
    ttft_p99, instances = {}, {}
    for at in ("max", "min"):
        west = simulate_fleet(service, requests_per_s=12.0, at=at, **shape).runs[1]  # type: ignore[arg-type]
        instances[at] = sum(west.instances)
        ttft_p99[at] = step_summary(west.run, open_loop=True).latency["ttft_ms"].p99
    assert (instances["max"], instances["min"]) == (4, 1)
    assert ttft_p99["min"] > 2 * ttft_p99["max"]


LOAD = ("--load", "5req/s")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*LOAD, "--users", "4"], "--users: applies to --local"),
        ([*LOAD, "--servers", "3"], "--servers: applies to --local"),
        ([*LOAD, "--at", "medium"], "--at: use max or min"),
        ([*LOAD, "--local"], "--local: simulates the local rehearsal; --config a fleet file"),
        ([], "--load: give the fleet's load"),
        (["--load", "fast"], "--load: 'fast' is not a load"),
        ([*LOAD, "--service", "search"], "--service search: no such service"),
        ([*LOAD, "--weights", "eu-west-1=1"], "--weights: 'eu-west-1=1' is not REGION=WEIGHT"),
        ([*LOAD, "--duration", "0"], "--duration: Input should be greater than 0"),
        ([*LOAD, "--burstiness", "0.5"], "--burstiness: --burstiness is the shape of --arrival"),
        ([*LOAD, "--arrival", "bursts"], "--arrival: "),
    ],
)
def test_bad_input_is_one_clear_paragraph_and_exit_2(
    fleet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "sim"
    code, err = simulate(capsys, "--config", str(fleet), *args, "--out", str(out))

    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_arrivals_are_spaced_as_the_bench_spaces_them(fleet: Path) -> None:
    from inferfleet.cli.bench.config import Distribution
    from inferfleet.cli.sizing.figures import step_summary
    from inferfleet.cli.sizing.fleet_run import simulate_fleet
    from inferfleet.cli.sizing.fleet_shapes import fleet_service
    from inferfleet.cli.sizing.prices import PriceLookup, load_prices

    service = fleet_service(
        fleet, None, context_tokens=250.0, price=PriceLookup(load_prices()), weights=None
    )
    simulated = simulate_fleet(
        service, requests_per_s=10.0, prompt_tokens=Distribution.parse(SIZES[1]),
        output_tokens=Distribution.parse(SIZES[3]), duration_s=30.0, warmup_s=10.0, seed=0,
        arrival="constant",
    )  # fmt: skip

    # Every 1/5 s in each region: 150 sends in the 30 s window, give or take the edge.
    counts = [step_summary(r.run, open_loop=True).requests for r in simulated.runs]
    assert [abs(count - 150) <= 1 for count in counts] == [True, True]


def test_without_local_or_config_says_how(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = simulate(capsys, "--load", "5req/s")
    assert code == 2 and "--local" in err and "--config FLEET.yaml" in err
