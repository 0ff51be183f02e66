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
        (["--load", "0m=1req/s,5m=2req/s", "--load-shape", "wave"], "--load-shape: use ramp"),
        ([*LOAD, "--load-shape", "step"], "--load-shape: shapes a --load schedule"),
        (["--load", "5m=1req/s,1m=2req/s"], "ascending order"),
        (["--load", "0m=1req/s,later"], "'later' is not TIME=LOAD"),
        (["--load", "0m=fast"], "--load: 'fast' is not a load"),
        (["--load", "soon=1req/s"], "--load: 'soon' is not a duration"),
        (["--load", "5000req/s", "--duration", "3600"], "more than the 2,000,000"),
        (["--load", "0m=10req/s,1h=5000req/s"], "more than the 2,000,000"),
        ([*LOAD, "--prefix-tokens", "10"], "--prefix-tokens: applies to --local"),
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


RAMP_FLEET = """\
name: ramp
regions: [us-east-1]
services:
  chat:
    kind: llm
    model: {parameters_b: 8, weights_dtype: int8, max_batch_size: 8}
    pools:
      - {instance_type: inf2.xlarge, tensor_parallel: 2, min: 1, max: 12}
    health_check: {grace_period_s: 120}
    autoscaling: {requests_per_target_per_minute: 60, scale_in_cooldown_s: 300}
"""
RAMP = ("--load", "0m=0.5req/s,15m=5req/s,30m=0.5req/s", "--duration", "3600", *SIZES)


def ramp_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, *args: str) -> dict:
    config = tmp_path / "ramp.yaml"
    config.write_text(RAMP_FLEET)
    code, err = simulate(capsys, "--config", str(config), *RAMP, *args, "--out",
                         str(tmp_path / name))  # fmt: skip
    assert code == 0, err
    return json.loads((tmp_path / name / "results.json").read_text())


def test_a_ramp_scales_the_pool_out_and_back_in_and_its_queue_drains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scaled = ramp_run(tmp_path, capsys, "scaled", "--at", "min", "--autoscale")
    [step] = scaled["steps"]
    timeline = step["timeline"]
    assert len(timeline) == 61  # the warm-up minute, then the hour
    serving = [point["in_service"]["inf2.xlarge"] for point in timeline]
    starting = [point["starting"]["inf2.xlarge"] for point in timeline]
    queued = [point["queued"] for point in timeline]
    rates = [point["requests_per_s"] for point in timeline]
    peak = serving.index(max(serving))
    assert serving[0] == 1 and max(serving) >= 4 and serving[-1] <= 2
    assert 10 <= peak <= 40  # around the top of the load, at 16 minutes in
    # Instances are asked for once the minute's requests per target passed 60 three times,
    # and serve two minutes (the 120 s grace period) later.
    first = starting.index(next(count for count in starting if count))
    over = [(p["requests_per_target_per_minute"] or 0) > 60 for p in timeline]
    assert over[first - 2] and over[first - 1] and over[first]
    assert serving[first + 2] == serving[first] + starting[first]
    # While the pool catches up its queue grows; once it has, the queue is gone.
    assert max(queued[: peak + 1]) > 20 and max(queued[-15:]) <= 2
    assert max(rates) == pytest.approx(5.0, rel=0.25) and rates[-1] == pytest.approx(0.5, abs=0.4)
    assert scaled["load"]["autoscale"]["startup_s"] == 120
    assert scaled["load"]["schedule"] == {
        "shape": "ramp", "points": [[0.0, 0.5], [900.0, 5.0], [1800.0, 0.5]],
    }  # fmt: skip
    report = (tmp_path / "scaled" / "report.md").read_text()
    assert "## Timeline" in report and "| minute | req/s |" in report

    # The same ramp on the smallest fleet, not scaled: one instance, and far worse.
    fixed = ramp_run(tmp_path, capsys, "fixed", "--at", "min")["steps"][0]
    assert {p["in_service"]["inf2.xlarge"] for p in fixed["timeline"]} == {1}
    assert max(p["queued"] for p in fixed["timeline"]) > 3 * max(queued)
    assert fixed["latency"]["ttft_ms"]["p99"] > 3 * step["latency"]["ttft_ms"]["p99"]
    # The largest fleet all along costs more per token than the scaled one.
    largest = ramp_run(tmp_path, capsys, "largest", "--at", "max")["steps"][0]
    assert {p["in_service"]["inf2.xlarge"] for p in largest["timeline"]} == {12}
    pools = scaled["target"]["fleet"]["regions"][0]["pools"]
    assert 1 < pools[0]["mean_instances"] < 6
    cost = step["cost_per_million_output_tokens"]
    assert largest["cost_per_million_output_tokens"] > 2 * cost
    assert scaled["workload"]["hash"] == largest["schedule_hash"] == step["schedule_hash"]


def test_a_trace_replays_against_the_fleet_one_region_per_session(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from inferfleet.cli.bench.config import Distribution
    from inferfleet.cli.bench.trace import TraceMakeConfig, load_trace, write_trace
    from inferfleet.cli.bench.workload import Workload

    trace = tmp_path / "trace.jsonl"
    write_trace(TraceMakeConfig(out=trace, duration=240, rate=1.0, seed=3, think_time=2.0,
                                session_fraction=0.6))  # fmt: skip
    out = tmp_path / "replay"
    code, err = simulate(capsys, "--config", str(fleet), "--trace", str(trace), "--trace-speed",
                         "2", "--prefix-tokens", "50", "--warmup", "10", "--autoscale",
                         "--at", "min", "--out", str(out))  # fmt: skip
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["load"]["trace"] == str(trace) and results["load"]["trace_speed"] == 2.0
    assert results["workload"]["trace_sha256"] == load_trace(trace).sha256
    rows = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    parsed = load_trace(trace)
    assert sorted(row["index"] for row in rows) == list(range(len(parsed)))
    one = Distribution.parse("1")
    replay = Workload(seed=0, prompt_tokens=one, output_tokens=one, trace=parsed, prefix_tokens=50)
    region_of: dict[str, set[str]] = {}
    steps = {step["id"]: step["variant"] for step in results["steps"]}
    for row in rows:
        # Each row leaves at its offset, twice as fast, with its history and prefix counted.
        assert row["sent_ms"] == pytest.approx(parsed.offsets[row["index"]] * 500.0, abs=1e-3)
        assert row["prompt_tokens"] == replay.sizes(row["index"])[0]
        session = parsed.sessions[row["index"]]
        if session is not None:
            region_of.setdefault(session, set()).add(steps[row["step"]])
    assert len(region_of) > 10 and all(len(regions) == 1 for regions in region_of.values())
    assert {step["variant"] for step in results["steps"]} == {
        "region=us-east-1", "region=us-west-2",
    }  # fmt: skip
    assert all(step["timeline"] for step in results["steps"])


def test_a_trace_shorter_than_the_warmup_is_refused(
    fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "short.jsonl"
    trace.write_text('{"timestamp": 0, "prompt_tokens": 5, "output_tokens": 3}\n'
                     '{"timestamp": 30, "prompt_tokens": 5, "output_tokens": 3}\n')  # fmt: skip
    for args, message in (
        ((), "--warmup: the trace lasts 30 s"),
        (("--load", "5req/s"), "--load: the trace sets"),
        (("--duration", "5"), "--duration: the trace sets"),
    ):
        code, err = simulate(capsys, "--config", str(fleet), "--trace", str(trace), *args,
                             "--out", str(tmp_path / "o"))  # fmt: skip
        assert code == 2 and message in err and "Traceback" not in err
        assert not (tmp_path / "o").exists()


def test_autoscale_and_traces_are_for_a_fleet_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag in (("--autoscale",), ("--load-shape", "step"), ("--trace", "t.jsonl")):
        code, err = simulate(capsys, "--local", "--users", "2", *flag, "--out",
                             str(tmp_path / "o"))  # fmt: skip
        assert code == 2 and f"{flag[0]}: applies to --config FLEET.yaml" in err
