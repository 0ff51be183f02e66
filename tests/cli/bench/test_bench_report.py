"""results.json, report.md and plots from measured steps, without a server."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from fabricated import outcome, streamed

from inferfleet.cli.bench.metrics import StepIdentity, Thresholds, measure_step
from inferfleet.cli.bench.models import RunResults
from inferfleet.cli.bench.plots import write_plots
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.report import render_report
from inferfleet.cli.bench.results import OutputDir, ResultsWriter, request_rows
from inferfleet.cli.bench.variants import paired_ratios

# One failed request in 21 is tolerated: the steps differ by their client lag alone.
TOLERANT = Thresholds(max_loop_lag_ms=20, max_dispatch_lag_ms=20, max_error_rate=0.1)
HEADER = {
    "tool": {"name": "inferfleet bench", "version": "0.1.0"},
    "machine": {"hostname": "box", "cpus": 2, "platform": "Linux"},
    "target": {"api": "openai", "url": "http://127.0.0.1:1/v1/completions", "emulated": True},
    "workload": {"seed": 4, "hash": "ab" * 32, "prompt_tokens": "128", "output_tokens": "64"},
    "load": {"mode": "open", "duration": 5.0, "requests": None, "warmup": 1.0, "repeat": 1,
             "workers": 1, "max_loop_lag_ms": 20.0, "max_dispatch_lag_ms": 20.0},
    "variants": ["routing=least_outstanding_requests", "routing=random"],
    "started_at": "2026-12-02T00:00:00+00:00",
}  # fmt: skip


def measured_step(number: int, variant: str, ttft: float, lag_ms: float) -> tuple:
    records = [
        streamed(i, i * 0.1, ttft=ttft, gap=0.02, tokens=8, instance=f"i{i % 2}", scheduled=i * 0.1)
        for i in range(20)
    ]
    failed = RequestRecord(99, 10, 8, sent=0.5, end=0.6)
    failed.fail("http_503", "busy")
    records.append(failed)
    identity = StepIdentity(id=number, variant=variant, load=4.0, rate=4.0)
    figures = measure_step(outcome(records, [lag_ms] * 10), open_loop=True, thresholds=TOLERANT,
                           identity=identity)  # fmt: skip
    rows = request_rows(records, step=number, variant=variant, repeat=0, users=None, rate=4.0,
                        origin=0.0)  # fmt: skip
    return figures.result, rows, figures.latencies


def test_results_report_and_plots_agree(tmp_path: Path) -> None:
    output = OutputDir.claim(tmp_path)
    writer = ResultsWriter(output, HEADER)
    assert json.loads((tmp_path / "results.json").read_text())["partial"] is True
    latencies = []
    for number, (variant, ttft, lag) in enumerate(
        [("routing=least_outstanding_requests", 0.05, 1.0), ("routing=random", 0.2, 50.0)], 1
    ):
        summary, rows, figures = measured_step(number, variant, ttft, lag)
        writer.add_step(summary, rows)
        latencies.append(figures)
    comparisons = paired_ratios(writer.results.steps, HEADER["variants"])
    writer.finish(partial=False, comparisons=comparisons)
    results = RunResults.load_file(tmp_path / "results.json")
    assert results.schema_version == 2 and results.partial is False
    assert [step.valid for step in results.steps] == [True, False]
    assert comparisons[0].ratios["TTFT p50"].geomean == 4.0

    with (tmp_path / "requests.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 42
    assert rows[20]["error"] == "http_503"

    plots = write_plots(output, results, latencies)
    assert plots == ["latency_cdf_rate_4.png", "p99_latency_vs_load.png",
                     "tokens_per_min_vs_load.png"]  # fmt: skip
    assert all((tmp_path / name).stat().st_size > 5000 for name in plots)

    report = render_report(results, plots)
    assert report.startswith("# inferfleet bench report\n\n> **EMULATED TARGET.**")
    assert "## Invalid steps" in report and "event-loop lag p99 50.0 ms > 20 ms" in report
    assert "- step 1: http 1 (http_503 x1)" in report and "never retried" in report
    assert "routing=random vs routing=least_outstanding_requests" in report
    assert "| 4 req/s |" in report and "TTFT p50 / p99 from schedule" in report
    assert "| i0 | 10 |" in report
    assert "![p99_latency_vs_load.png](p99_latency_vs_load.png)" in report
    assert np.isclose(results.steps[0].latency["ttft_ms"].p50, 50.0)


def test_one_load_point_is_drawn_as_bars_and_several_as_lines() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fabricated import step_result

    from inferfleet.cli.bench.plots import _against_load

    variants = ["routing=least_outstanding_requests", "routing=random"]
    single = [step_result(variant=name, load=20.0, output_tokens_per_min=value)
              for name, value in zip(variants, (900.0, 700.0), strict=True)]  # fmt: skip
    figure, (one, many) = plt.subplots(1, 2)
    _against_load(one, single, variants, lambda s: s.output_tokens_per_min, "users")
    assert [bar.get_height() for bar in one.patches] == [900.0, 700.0] and not one.lines
    assert [tick.get_text() for tick in one.get_xticklabels()] == variants
    several = [*single, step_result(variant=variants[0], load=40.0, output_tokens_per_min=1500.0)]
    _against_load(many, several, variants, lambda s: s.output_tokens_per_min, "users")
    assert not many.patches and len(many.lines) == 2
    plt.close(figure)
