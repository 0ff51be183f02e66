"""Figures that stay true when the client is loaded: ITL per request, achieved concurrency.

The timed server logs when it wrote each chunk and when each answer arrived and
ended, on the monotonic clock the client reads too; the truth comes from there.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from test_bench_engine import run, server_sent_log, workload

from inferfleet.cli.bench.engine import StepPlan, StopFlag
from inferfleet.cli.bench.metrics import Thresholds, measure_step

LENIENT = Thresholds(max_loop_lag_ms=1000, max_dispatch_lag_ms=1000)


def test_itl_per_request_stays_true_where_per_gap_itl_collapses(timed_server) -> None:
    # A client that is busy 8 ms of every 10 reads the 1 ms chunks several at a time:
    # most gaps measure 0. Each request's mean gap spans its whole stream and stays true.
    url = timed_server(ttft_ms=5, itl_ms=1)

    async def busy(stop: StopFlag) -> None:
        while True:
            await asyncio.sleep(0.002)
            time.sleep(0.008)

    tokens = 150
    server_sent_log(url)
    outcome = run(url, StepPlan(users=2, requests=6, warmup=0), output_tokens=tokens,
                  alongside=busy)  # fmt: skip
    truth = server_sent_log(url)
    step = measure_step(outcome, open_loop=False, thresholds=LENIENT).result
    assert step.latency["itl_ms"].p50 == 0.0
    assert step.coalesced_gaps is not None and step.coalesced_gaps > 0.5
    assert any("per-gap ITL understates" in note for note in step.notes)
    errors = []
    requests = workload(tokens)
    for record in outcome.records:
        written = truth[requests.spec(record.index).prompt]["chunks"]
        true_mean_ms = (written[-1] - written[0]) * 1000.0 / (len(written) - 1)
        errors.append(np.mean(record.itl_ms) - true_mean_ms)
    assert len(errors) == 6
    assert np.median(np.abs(errors)) <= 0.2, errors
    per_request = step.latency["itl_per_request_ms"]
    assert per_request.count == 6 and 0.9 <= per_request.p50 <= 1.5


def test_achieved_concurrency_matches_what_the_server_counts(timed_server) -> None:
    url = timed_server(ttft_ms=20, itl_ms=5)
    server_sent_log(url)
    # Answers of ~320 ms: the few ms each exchange spends between the client's send and
    # the server's handler (and back) are a small part of each request's time in flight.
    outcome = run(url, StepPlan(users=6, duration=1.0, warmup=0.3), output_tokens=60)
    truth = server_sent_log(url)
    window = (outcome.measured_from, outcome.measured_from + 1.0)
    step = measure_step(outcome, open_loop=False, thresholds=LENIENT, window=window).result
    # Time-weighted answers in progress at the server, over the same window.
    busy = sum(
        max(0.0, min(entry["done"], window[1]) - max(entry["received"], window[0]))
        for entry in truth.values()
    )
    at_server = busy / (window[1] - window[0])
    assert step.achieved_concurrency is not None
    assert 5.0 <= at_server <= 6.0
    assert at_server <= step.achieved_concurrency <= 6.0
    assert step.achieved_concurrency - at_server <= 0.08 * at_server
