"""The routing study end to end on the local fleet, goodput on a known-timing server, and
the SLO search: through the real ``inferfleet bench`` entry point."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from inferfleet.cli.bench.models import RunResults
from inferfleet.cli.main import main

LENIENT_CLIENT = ("--max-loop-lag-ms", "1000", "--max-dispatch-lag-ms", "1000")


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return int(exited.value.code or 0)


@pytest.mark.slow
def test_scaling_sweep_with_routing_ab_gives_the_study_table(tmp_path: Path) -> None:
    out = tmp_path / "study"
    code = cli(
        "--local", "--scale", "instances=1,3", "--users-per-instance", "3",
        "--compare", "routing=least_outstanding_requests,random", "--duration", "2",
        "--warmup", "0.5", "--output-tokens", "12", "--out", str(out), *LENIENT_CLIENT,
    )  # fmt: skip
    assert code == 0
    results = RunResults.load_file(out / "results.json")
    assert [(s.instances, s.users, s.variant.partition("=")[2]) for s in results.steps] == [
        (1, 3, "least_outstanding_requests"), (1, 3, "random"),
        (3, 9, "least_outstanding_requests"), (3, 9, "random"),
    ]  # fmt: skip
    # Resizing is real: with one instance behind nginx, one emulator served every request.
    for step in results.steps:
        served = {row.instance for row in step.per_instance}
        assert served <= {f"emulator-{n}" for n in range(step.instances or 0)}, served
        assert sum(row.requests for row in step.per_instance) == step.succeeded
    assert {row.instance for row in results.steps[2].per_instance} == {
        "emulator-0", "emulator-1", "emulator-2",
    }  # fmt: skip
    study = results.study
    assert study is not None and study.users_per_instance == 3
    assert [(row.instances, row.users) for row in study.rows] == [(1, 3), (3, 9)]
    for row, (lor, rnd) in zip(study.rows, (results.steps[:2], results.steps[2:]), strict=True):
        assert row.e2e_p99_ms[lor.variant].geomean == lor.latency["e2e_ms"].p99
        expected = (1 - lor.latency["e2e_ms"].p99 / rnd.latency["e2e_ms"].p99) * 100
        assert row.e2e_p99_improvement_pct.geomean == pytest.approx(expected, abs=0.05)
        per_instance = lor.output_tokens_per_min / (lor.instances or 1)
        assert row.tokens_per_instance_per_min[lor.variant].geomean == pytest.approx(
            per_instance, rel=1e-3
        )
    report = (out / "report.md").read_text()
    assert report.index("## Study: least_outstanding_requests vs random") < report.index("## Steps")
    assert "| 3 | 9 |" in report and "![study_vs_instances.png]" in report
    assert (out / "study_vs_instances.png").stat().st_size > 5000


def test_goodput_counts_the_requests_that_met_every_limit(timed_server, tmp_path: Path) -> None:
    # E2E = 50 ms + (tokens - 1) x 20 ms: 7 tokens take 170 ms, 8 take 190 ms. A 180 ms limit
    # admits exactly the requests asked for at most 7 tokens.
    url = timed_server(ttft_ms=50, itl_ms=20)
    out = tmp_path / "goodput"
    code = cli(
        "--target", url, "--users", "4", "--requests", "40", "--warmup", "0",
        "--output-tokens", "uniform:3:12", "--slo", "e2e_p50=180ms,ttft_p99=1s",
        "--out", str(out), *LENIENT_CLIENT,
    )  # fmt: skip
    assert code == 0
    [step] = RunResults.load_file(out / "results.json").steps
    with (out / "requests.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["warmup"] == "False"]
    short = [row for row in rows if int(row["requested_tokens"]) <= 7]
    assert step.goodput is not None
    assert step.goodput.requests == len(short) and 0 < len(short) < len(rows)
    window = step.measured_seconds
    assert step.goodput.requests_per_s == pytest.approx(len(short) / window, rel=1e-3)
    good_tokens = sum(int(row["output_tokens"]) for row in short)
    assert step.goodput.output_tokens_per_min == pytest.approx(good_tokens / window * 60, rel=1e-3)
    # The step's median E2E is of all requests: (3..12 tokens) above 180 ms, so the SLO is missed.
    met = step.latency["e2e_ms"].p50 <= 180
    assert step.goodput.slo_met is met
    assert ("e2e_p50" in " ".join(step.goodput.misses)) is not met
    assert "Goodput" in (out / "report.md").read_text()


@pytest.mark.slow
def test_find_max_load_brackets_where_the_slo_breaks(tmp_path: Path) -> None:
    # One emulated server with 4 slots: up to 4 users start at once (TTFT tens of ms); a
    # fifth waits for a whole answer (16 tokens x ~28 ms), far past a 200 ms TTFT limit.
    out = tmp_path / "search"
    code = cli(
        "--local", "--servers", "1", "--users", "1,12", "--find-max-load",
        "--slo", "ttft_p99=200ms", "--duration", "2", "--warmup", "0.5",
        "--output-tokens", "16", "--out", str(out), *LENIENT_CLIENT,
    )  # fmt: skip
    results = RunResults.load_file(out / "results.json")
    search = results.max_load
    assert search is not None and search.mode == "users"
    assert (search.best, search.failed_above) == (4, 5), search.probes
    assert search.probes[:2] == [(1, True), (12, False)]
    assert code == 0
    met = {step.users: step.goodput.slo_met for step in results.steps if step.goodput}
    assert all(met[users] == (users <= 4) for users in met)
    report = (out / "report.md").read_text()
    assert "Largest load that met it: **4 users**" in report


def test_bad_sweeps_and_slos_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (("--local", "--scale", "instances=1,5"), "--users-per-instance: "),
        (("--local", "--scale", "nodes=1,5", "--users-per-instance", "2"), "--scale: "),
        (("--local", "--scale", "instances=0,5", "--users-per-instance", "2"), "--scale: "),
        (("--local", "--scale", "instances=1,100", "--users-per-instance", "2"), "--scale: "),
        (("--target", "http://127.0.0.1:9", "--scale", "instances=1,2", "--users-per-instance",
          "2"), "--scale: "),
        (("--local", "--users", "4", "--slo", "ttft_p42=1s"), "--slo: "),
        (("--local", "--users", "4", "--slo", "ttft_p99=fast"), "--slo: "),
        (("--local", "--users", "4", "--find-max-load"), "--find-max-load: "),
        (("--local", "--users", "4", "--find-max-load", "--slo", "ttft_p99=1s"),
         "--find-max-load: "),
    ]  # fmt: skip
    for args, phrase in cases:
        assert cli(*args, "--duration", "1", "--out", str(tmp_path / "o")) == 2, args
        error = capsys.readouterr().err
        assert error.startswith(f"error: {phrase}"), (args, error)
    assert not (tmp_path / "o").exists()
