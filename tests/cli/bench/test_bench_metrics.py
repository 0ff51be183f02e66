"""Step figures from records with hand-set timestamps: every number is derivable by hand."""

from __future__ import annotations

import pytest
from fabricated import LENIENT, outcome, streamed

from inferfleet.cli.bench.metrics import (
    Thresholds,
    cost_per_million,
    distribution,
    measure_step,
    tokens_between,
)
from inferfleet.cli.bench.records import RequestRecord


def test_latencies_throughput_and_cost_from_known_times() -> None:
    # Two requests of 11 tokens: TTFT 0.1 s and 0.3 s, gaps 20 ms, back to back over 1 s.
    records = [
        streamed(0, 0.0, ttft=0.1, gap=0.02, tokens=11, instance="a"),
        streamed(1, 0.4, ttft=0.3, gap=0.02, tokens=11, instance="b"),
    ]
    figures = measure_step(
        outcome(records), open_loop=False, thresholds=LENIENT, price_per_hour=6.0, instances=2
    )
    step = figures.summary
    assert step["latency"]["ttft_ms"]["p50"] == pytest.approx(200.0)
    assert step["latency"]["ttft_ms"]["mean"] == pytest.approx(200.0)
    assert step["latency"]["itl_ms"]["p99"] == pytest.approx(20.0)
    assert step["latency"]["itl_ms"]["count"] == 20
    assert step["latency"]["tpot_ms"]["p50"] == pytest.approx(20.0)
    assert step["latency"]["e2e_ms"]["p50"] == pytest.approx(400.0)
    # 22 tokens from t=0 (first send) to t=0.9 (last answer).
    assert step["output_tokens_per_min"] == pytest.approx(22 / 0.9 * 60, rel=1e-3)
    assert step["requests_per_s"] == pytest.approx(2 / 0.9, rel=1e-3)
    hourly_millions = 22 / 0.9 * 3600 / 1e6
    assert step["cost_per_million_output_tokens"] == pytest.approx(12.0 / hourly_millions, rel=1e-3)
    assert [row["instance"] for row in step["per_instance"]] == ["a", "b"]
    assert step["per_instance"][1]["ttft_ms"]["p50"] == pytest.approx(300.0)
    assert step["token_source"] == "usage"
    assert step["valid"] is True


def test_warmup_and_cancelled_requests_are_not_measured() -> None:
    warm = streamed(0, 0.0, ttft=5.0, gap=0.01, tokens=3, warmup=True)
    cancelled = RequestRecord(1, 10, 3, sent=0.2)
    cancelled.fail("cancelled")
    failed = RequestRecord(2, 10, 3, sent=0.3, end=0.35)
    failed.fail("http_503", "overloaded")
    kept = streamed(3, 0.4, ttft=0.05, gap=0.01, tokens=3, usage=False)
    step = measure_step(
        outcome([warm, cancelled, failed, kept]), open_loop=False, thresholds=LENIENT
    ).summary
    assert step["requests"] == 2
    assert step["errors"] == 1
    assert step["errors_by_kind"] == {"http_503": 1}
    assert step["warmup_requests"] == 1
    assert step["cancelled_requests"] == 1
    assert step["latency"]["ttft_ms"]["p50"] == pytest.approx(50.0)
    assert step["token_source"] == "chunks"


def test_open_loop_latency_is_also_measured_from_the_schedule() -> None:
    late = streamed(0, 1.0, ttft=0.1, gap=0.01, tokens=2, scheduled=0.25)
    step = measure_step(outcome([late]), open_loop=True, thresholds=LENIENT).summary
    assert step["latency"]["ttft_ms"]["p50"] == pytest.approx(100.0)
    assert step["latency"]["ttft_from_schedule_ms"]["p50"] == pytest.approx(850.0)
    assert step["latency"]["e2e_from_schedule_ms"]["p50"] == pytest.approx(860.0)


def test_window_counts_only_tokens_received_inside_it() -> None:
    record = streamed(0, 0.0, ttft=0.1, gap=0.1, tokens=10)  # tokens at 0.1 .. 1.0
    assert tokens_between(record, 0.0, 2.0) == 10
    assert tokens_between(record, 0.45, 0.75) == 3
    record.usage_tokens = 20  # two tokens per chunk
    assert tokens_between(record, 0.45, 0.75) == 6
    step = measure_step(
        outcome([record]), open_loop=False, thresholds=LENIENT, window=(0.45, 0.75)
    ).summary
    assert step["output_tokens_per_min"] == pytest.approx(6 / 0.3 * 60)


def test_client_lag_marks_the_step_invalid_with_the_reason() -> None:
    record = streamed(0, 0.0, ttft=0.1, gap=0.01, tokens=3)
    lags = [0.2] * 90 + [45.0] * 10
    step = measure_step(outcome([record], lags), open_loop=False, thresholds=LENIENT).summary
    assert step["valid"] is False
    assert "event-loop lag p99 45.0 ms > 20 ms" in step["invalid_reasons"][0]


def test_dispatch_lag_marks_an_open_loop_step_invalid() -> None:
    records = []
    for index in range(50):
        record = streamed(index, float(index), ttft=0.1, gap=0.01, tokens=2, scheduled=index)
        record.dispatch_lag_s = 0.08 if index % 10 == 0 else 0.0
        records.append(record)
    step = measure_step(outcome(records), open_loop=True, thresholds=LENIENT).summary
    assert step["client"]["dispatch_lag_ms"]["max"] == pytest.approx(80.0)
    assert any("dispatch lag" in reason for reason in step["invalid_reasons"])


def test_stopped_and_empty_steps_are_invalid() -> None:
    failed = RequestRecord(0, 10, 3, sent=0.0, end=0.1)
    failed.fail("connect")
    step = measure_step(outcome([failed], stopped=True), open_loop=False, thresholds=LENIENT)
    assert step.summary["invalid_reasons"] == [
        "no request succeeded: all 1 failed (connect x1)",
        "interrupted: partial step",
    ]
    assert step.summary["failed"] is True
    assert step.summary["latency"]["ttft_ms"]["p50"] is None


def test_the_error_rate_threshold_fails_a_step() -> None:
    records = [streamed(index, index * 0.1, ttft=0.05, gap=0.01, tokens=3) for index in range(97)]
    for index in range(3):
        failed = RequestRecord(100 + index, 10, 3, sent=1.0, end=1.1)
        failed.fail("http_502", "bad gateway")
        records.append(failed)
    strict = measure_step(outcome(records), open_loop=False, thresholds=LENIENT).summary
    assert strict["failed"] is True and strict["valid"] is False
    assert strict["invalid_reasons"] == [
        "3 of 100 requests failed (3.00%: http_502 x3), over --max-error-rate 0"
    ]
    tolerant = Thresholds(20, 20, max_error_rate=0.05)
    step = measure_step(outcome(records), open_loop=False, thresholds=tolerant).summary
    assert step["failed"] is False and step["valid"] is True
    assert step["errors"] == 3


def test_distribution_and_cost_edge_cases() -> None:
    import numpy as np

    values = np.arange(1, 1001, dtype=float)
    summary = distribution(values)
    assert summary.p50 == pytest.approx(500.5)
    assert summary.p999 == pytest.approx(999.001)
    assert summary.count == 1000
    assert cost_per_million(0.0, 5.0, 1) is None
    assert cost_per_million(1e6 / 60, 5.0, None) is None
    assert cost_per_million(1e6 / 60, 5.0, 3) == pytest.approx(15.0)


def test_answers_of_another_length_are_counted() -> None:
    exact = streamed(0, 0.0, ttft=0.1, gap=0.01, tokens=5)
    short = streamed(1, 0.0, ttft=0.1, gap=0.01, tokens=5)
    short.requested_tokens = 8
    step = measure_step(outcome([exact, short]), open_loop=False, thresholds=LENIENT).summary
    assert step["output_length_mismatches"] == 1
    assert step["output_tokens"] == 10


@pytest.mark.parametrize(
    ("process_share", "machine_share", "side"),
    [
        (0.95, 0.6, "the client process ran out of CPU (95% of a core per process; add --workers"),
        (0.3, 0.97, "the machine ran out of CPU (97% of all cores busy, the client 30% of a core"),
        (0.3, 0.5, "the client was held up without running out of CPU (client 30% of a core, "
         "machine 50% busy)"),
    ],
)  # fmt: skip
def test_a_client_bound_step_says_which_side_ran_out_of_cpu(
    process_share: float, machine_share: float, side: str
) -> None:
    records = [streamed(0, 0.0, ttft=0.1, gap=0.02, tokens=11, instance="a")]
    step = outcome(records, lags=[50.0])
    step.process_cpu_s = process_share * step.seconds
    step.machine_busy_s, step.machine_total_s = machine_share * 2.0, 2.0
    thresholds = Thresholds(max_loop_lag_ms=20.0, max_dispatch_lag_ms=20.0)

    summary = measure_step(step, open_loop=False, thresholds=thresholds).summary

    assert summary["valid"] is False
    (reason,) = summary["invalid_reasons"]
    assert reason.startswith("client bottleneck: event-loop lag p99 50.0 ms > 20 ms: ")
    assert side in reason


@pytest.mark.parametrize(
    ("kind", "began", "expected"),
    [
        ("connect", False, "connection"),
        ("disconnected", False, "connection"),
        ("disconnected", True, "cut_stream"),
        ("truncated", True, "cut_stream"),
        ("http_502", True, "http"),
        ("grpc_internal", False, "http"),
        ("server_error", True, "stream_error"),
        ("stream_error", True, "stream_error"),
        ("timeout", True, "timeout"),
        ("bad_stream", True, "protocol"),
        ("client_error", False, "protocol"),
    ],
)
def test_failed_requests_are_counted_by_class(kind: str, began: bool, expected: str) -> None:
    records = [streamed(0, 0.0, ttft=0.1, gap=0.02, tokens=3), RequestRecord(1, 8, 3, sent=0.2)]
    if began:
        records[1].first_byte = 0.25
    records[1].fail(kind)
    records[1].end = 0.5
    step = measure_step(outcome(records), open_loop=False, thresholds=LENIENT).summary
    assert step["errors_by_class"] == {expected: 1} and step["errors_by_kind"] == {kind: 1}
