"""``bench --local --regions N --scenario brownout:...``: parsing, refusals, a short real run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from inferfleet.cli.bench.scenario import PLOT_FILE, Brownout, parse_scenario
from inferfleet.cli.main import main


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


def test_scenarios_parse_durations_factors_and_shares() -> None:
    assert parse_scenario("brownout:region=1,at=20s,slowdown=4") == Brownout(
        region="1", at_s=20, slowdown=4
    )
    assert parse_scenario("brownout:region=local-2,at=1m,for=500ms,kill=60%") == Brownout(
        region="local-2", at_s=60, for_s=0.5, kill=0.6
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storm:region=1,at=2s,slowdown=4", "is not a scenario"),
        ("brownout:region=1,at=soon,slowdown=4", "at='soon' is not a duration"),
        ("brownout:region=1,at=2s", "exactly one of slowdown"),
        ("brownout:region=1,at=2s,slowdown=4,kill=50%", "exactly one of slowdown"),
        ("brownout:region=1,at=2s,slowdown=fast", "slowdown='fast' must be a factor"),
        ("brownout:region=1,at=2s,kill=all", "kill='all' must be a share"),
        ("brownout:region=1,at=2s,colour=red", "'colour' is not a scenario key"),
        ("brownout:at=2s,slowdown=4", "needs region=R and at="),
    ],
)
def test_a_bad_scenario_is_refused_with_the_fix(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scenario(text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--regions", "3", "--scenario", "brownout:region=5,at=2s,slowdown=4"], "region=5"),
        (["--regions", "1", "--scenario", "brownout:region=0,at=2s,slowdown=4"], "--regions"),
        (["--regions", "3", "--scenario", "brownout:region=1,at=50s,slowdown=4"], "--duration"),
        (
            [
                "--regions",
                "3",
                "--users",
                "4,8",
                "--scenario",
                "brownout:region=1,at=5s,slowdown=4",
            ],
            "single value",
        ),
        (["--regions", "3"], "add one"),
        (
            [
                "--regions",
                "3",
                "--scenario",
                "brownout:region=1,at=5s,slowdown=4",
                "--control-period",
                "30",
            ],
            "--control-period",
        ),
    ],
)
def test_bad_scenario_flags_exit_2_naming_the_flag(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli("--local", "--duration", "20", "--out", str(tmp_path / "out"), *args)
    assert code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_short_brownout_moves_weight_away_and_beats_static_weights(tmp_path: Path) -> None:
    out = tmp_path / "brownout"
    code = cli(
        "--local", "--regions", "3", "--servers", "2", "--users", "12", "--duration", "18",
        "--warmup", "1", "--output-tokens", "48", "--control-period", "1",
        "--scenario", "brownout:region=1,at=5s,for=8s,slowdown=4", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["partial"] is False
    assert [step["variant"] for step in results["steps"]] == ["controller", "static"]
    scenario = results["scenario"]
    controller, static = scenario["arms"]["controller"], scenario["arms"]["static"]
    start, end = controller["brownout_window_s"]
    during = [
        entry["weights"]["local-1"]
        for entry in controller["timeline"]
        if entry["kind"] == "period" and start < entry["t"] < end
    ]
    assert min(during) < 33, controller["timeline"]
    assert controller["first_shift_s"] is not None and controller["first_shift_s"] < end - start
    static_weights = {
        json.dumps(entry["weights"]) for entry in static["timeline"] if entry["kind"] == "period"
    }
    assert len(static_weights) == 1
    assert controller["phases"]["during"]["ttft_p99_s"] < static["phases"]["during"]["ttft_p99_s"]
    assert scenario["done_when"]["during_ttft_p99_ratio"] < 1
    assert (out / PLOT_FILE).stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "Brownout scenario (EMULATED)" in report and PLOT_FILE in report
    assert (out / "requests.csv").read_text().count("\n") > 20


@pytest.mark.slow
def test_an_open_loop_scenario_sends_both_arms_the_same_arrivals(tmp_path: Path) -> None:
    out = tmp_path / "open-loop"
    code = cli(
        "--local", "--regions", "3", "--servers", "2", "--rate", "6", "--duration", "10",
        "--warmup", "1", "--output-tokens", "32", "--control-period", "1",
        "--scenario", "brownout:region=1,at=3s,for=4s,slowdown=4", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [step["rate"] for step in results["steps"]] == [6.0, 6.0]
    # Poisson arrivals at 6/s over 10 s: 60 expected, well inside 30..90.
    assert 30 <= results["steps"][0]["requests"] <= 90
    with (out / "requests.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    # Each arm's clock starts on its own; the arrival process is the same.
    schedules = {}
    for arm in ("controller", "static"):
        scheduled = [float(row["scheduled_ms"]) for row in rows if row["variant"] == arm]
        schedules[arm] = [ms - scheduled[0] for ms in scheduled]
    assert len(schedules["controller"]) > 30
    # The CSV rounds to 0.1 ms, so each offset is off by up to 0.1 ms either way.
    assert schedules["controller"] == pytest.approx(schedules["static"], abs=0.21)
    assert results["scenario"]["done_when"]["during_ttft_p99_s"]["static"] > 0
