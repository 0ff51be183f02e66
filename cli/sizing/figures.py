"""A simulated run's figures in the shape of an ``inferfleet bench`` step.

The keys, units and rounding are the bench's (:func:`inferfleet.cli.bench.metrics.measure_step`),
so a simulated ``results.json`` compares with a measured one file to file. Inter-token
gaps come as (value, count) pairs from the simulator; their percentiles interpolate
exactly as numpy's do on the expanded list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from inferfleet.cli.bench.metrics import (
    QUANTILES,
    StepIdentity,
    cost_per_million,
    distribution,
    latency_metrics,
)
from inferfleet.cli.bench.models import (
    ClientHealth,
    InstanceRow,
    LagFigures,
    LatencyBrief,
    LatencyDistribution,
    RunResults,
    StepResult,
    TimelinePoint,
)
from inferfleet.cli.sizing.simulator import SimulatedRun


def weighted_distribution(values: np.ndarray, counts: np.ndarray) -> LatencyDistribution:
    """The bench's ``distribution`` of ``values``, each repeated ``counts`` times."""
    total = int(counts.sum()) if counts.size else 0
    if total == 0:
        return LatencyDistribution()
    order = np.argsort(values, kind="stable")
    ordered, weights = values[order], counts[order]
    upper = np.cumsum(weights)  # rank (exclusive) where each value ends
    points = {}
    for name, quantile in QUANTILES.items():
        position = quantile / 100.0 * (total - 1)
        below = int(np.floor(position))
        fraction = position - below
        low = ordered[np.searchsorted(upper, below, side="right")]
        high = ordered[np.searchsorted(upper, min(below + 1, total - 1), side="right")]
        points[name] = round(float(low + fraction * (high - low)), 3)
    return LatencyDistribution(
        **points, mean=round(float(np.dot(ordered, weights) / total), 3), count=total
    )


def latency_figures(run: SimulatedRun, *, open_loop: bool) -> dict[str, LatencyDistribution]:
    """Every latency metric the bench registers, from the simulated requests."""
    measured = run.measured
    tokens = run.output_tokens[measured]
    span = (run.end - run.first_token)[measured]
    multi = tokens > 1
    figures = {
        "ttft_ms": distribution((run.first_token - run.sent)[measured] * 1000.0),
        "itl_ms": weighted_distribution(run.itl_values_s * 1000.0, run.itl_counts),
        "tpot_ms": distribution(span[multi] * 1000.0 / (tokens[multi] - 1)),
        "e2e_ms": distribution((run.end - run.sent)[measured] * 1000.0),
    }
    # A simulated answer ends with its last token: a request's mean gap is its TPOT.
    figures["itl_per_request_ms"] = figures["tpot_ms"]
    # Nothing delays a simulated send: schedule and send coincide.
    figures["ttft_from_schedule_ms"] = figures["ttft_ms"]
    figures["e2e_from_schedule_ms"] = figures["e2e_ms"]
    return {metric.key: figures[metric.key] for metric in latency_metrics(open_loop)}


def step_summary(
    run: SimulatedRun,
    *,
    open_loop: bool,
    price_per_hour: float | None = None,
    identity: StepIdentity | None = None,
    fleet_cost_per_hour: float | None = None,
    timeline: Sequence[TimelinePoint] = (),
) -> StepResult:
    """A bench :class:`StepResult` for a simulated run, marked ``simulated``.

    ``fleet_cost_per_hour`` (the step's whole fleet, e.g. one whose size changed over the
    run) replaces ``price_per_hour`` times the step's instances in the cost per token.
    """
    identity = identity or StepIdentity()
    measured = run.measured
    start, end = run.window
    seconds = end - start
    output_tokens = float(run.tokens_in_window.sum())
    tokens_per_min = output_tokens / seconds * 60.0 if seconds > 0 else 0.0
    finished = int(np.count_nonzero((run.end >= start) & (run.end < end)))
    count = int(np.count_nonzero(measured))
    in_flight = np.clip(np.minimum(run.end, end) - np.maximum(run.sent, start), 0.0, None)
    return StepResult(
        id=identity.id,
        variant=identity.variant,
        repeat=identity.repeat,
        load=identity.load,
        users=identity.users,
        rate=identity.rate,
        instances=identity.instances,
        schedule_hash=identity.schedule_hash,
        requests=count,
        succeeded=count,
        errors=0,
        errors_by_kind={},
        warmup_requests=int(measured.size - count),
        cancelled_requests=0,
        measured_seconds=round(seconds, 3),
        latency=latency_figures(run, open_loop=open_loop),
        output_tokens=round(output_tokens, 1),
        output_tokens_per_min=round(tokens_per_min, 1),
        requests_per_s=round(finished / seconds, 3) if seconds > 0 else 0.0,
        achieved_concurrency=round(float(in_flight.sum()) / seconds, 3) if seconds > 0 else None,
        token_source="usage" if count else None,
        output_length_mismatches=0,
        per_instance=per_instance(run, seconds),
        requests_without_instance=0,
        emulated=False,
        simulated=True,
        cost_per_million_output_tokens=cost_per_million(tokens_per_min, fleet_cost_per_hour, 1)
        if fleet_cost_per_hour is not None
        else cost_per_million(tokens_per_min, price_per_hour, identity.instances),
        timeline=list(timeline),
        client=ClientHealth(
            loop_lag_ms=LagFigures(p99=0.0, max=0.0),
            dispatch_lag_ms=LagFigures(p99=0.0, max=0.0) if open_loop else None,
            processes=0,
        ),
        failed=not count,
        valid=count > 0,
        invalid_reasons=[] if count else ["no request succeeded"],
    )


def per_instance(run: SimulatedRun, seconds: float) -> list[InstanceRow]:
    """The bench's per-instance rows, one per replica that served a measured request."""
    rows = []
    measured = run.measured
    for index, name in sorted(enumerate(run.replica_names), key=lambda item: item[1]):
        mine = measured & (run.replica == index)
        if not mine.any():
            continue
        ttft = distribution((run.first_token - run.sent)[mine] * 1000.0)
        e2e = distribution((run.end - run.sent)[mine] * 1000.0)
        tokens = float(run.tokens_in_window[index])
        rows.append(
            InstanceRow(
                instance=name,
                requests=int(np.count_nonzero(mine)),
                output_tokens_per_min=round(tokens / seconds * 60.0, 1) if seconds > 0 else 0.0,
                ttft_ms=LatencyBrief(p50=ttft.p50, p99=ttft.p99, mean=ttft.mean),
                e2e_ms=LatencyBrief(p50=e2e.p50, p99=e2e.p99, mean=e2e.mean),
            )
        )
    return rows


# CDF plots draw every value; beyond this many gaps they draw a proportional sample.
PLOTTED_GAPS = 200_000


def plotted_latencies(run: SimulatedRun) -> dict[str, np.ndarray]:
    """What the bench's CDF plots draw for a step: TTFT, gaps and E2E in ms."""
    measured = run.measured
    counts = run.itl_counts
    total = int(counts.sum())
    if total > PLOTTED_GAPS:
        counts = np.maximum(1, np.rint(counts * (PLOTTED_GAPS / total))).astype(np.int64)
    return {
        "ttft_ms": (run.first_token - run.sent)[measured] * 1000.0,
        "itl_ms": np.repeat(run.itl_values_s * 1000.0, counts),
        "e2e_ms": (run.end - run.sent)[measured] * 1000.0,
    }


def request_rows(
    run: SimulatedRun,
    *,
    step: int,
    variant: str,
    repeat: int,
    users: int | None,
    rate: float | None,
) -> list[dict]:
    """requests.csv rows (the bench's columns) of every simulated request, warm-up included."""
    rows = []
    ttft = (run.first_token - run.sent) * 1000.0
    e2e = (run.end - run.sent) * 1000.0
    tokens = run.output_tokens
    tpot = np.where(
        tokens > 1, (run.end - run.first_token) * 1000.0 / np.maximum(tokens - 1, 1), np.nan
    )
    numbers = run.request_index if run.request_index is not None else np.arange(run.sent.size)
    for index in range(run.sent.size):
        sent_ms = round(float(run.sent[index]) * 1000.0, 3)
        rows.append(
            {
                "step": step,
                "variant": variant,
                "repeat": repeat,
                "users": users,
                "rate": rate,
                "index": int(numbers[index]),
                "conversation": None if run.conversation is None else int(run.conversation[index]),
                "turn": None if run.turn is None else int(run.turn[index]),
                "warmup": not bool(run.measured[index]),
                "scheduled_ms": sent_ms if rate is not None else None,
                "sent_ms": sent_ms,
                "first_byte_ms": None,
                "first_token_ms": round(float(run.first_token[index]) * 1000.0, 3),
                "last_token_ms": round(float(run.end[index]) * 1000.0, 3),
                "end_ms": round(float(run.end[index]) * 1000.0, 3),
                "dispatch_lag_ms": 0.0,
                "inflight_wait_ms": 0.0,
                "ttft_ms": round(float(ttft[index]), 3),
                "e2e_ms": round(float(e2e[index]), 3),
                "ttft_from_schedule_ms": round(float(ttft[index]), 3) if rate is not None else None,
                "e2e_from_schedule_ms": round(float(e2e[index]), 3) if rate is not None else None,
                "itl_mean_ms": None if np.isnan(tpot[index]) else round(float(tpot[index]), 3),
                "prompt_tokens": int(run.prompt_tokens[index]),
                "requested_tokens": int(tokens[index]),
                "output_tokens": int(tokens[index]),
                "token_source": "usage",
                "chunks": int(tokens[index]),
                "coalesced_chunks": 0,
                "bytes": 0,
                "instance": run.replica_names[int(run.replica[index])],
                "status": 200,
                "error": None,
                "error_detail": "",
            }
        )
    return rows


def write_simulated_run(
    out: Path,
    header: dict,
    steps: Sequence[tuple[StepIdentity, SimulatedRun]],
    *,
    open_loop: bool,
    price_per_hour: float | None = None,
    compared: bool = True,
    step_costs: Mapping[int, float | None] | None = None,
    timelines: Mapping[int, Sequence[TimelinePoint]] | None = None,
) -> RunResults:
    """results.json, requests.csv, report.md and plots in ``out``, as bench writes them;
    ``compared`` adds the bench's paired ratios of each variant against the first;
    ``step_costs`` (by step id: dollars per hour of the step's fleet) replaces
    ``price_per_hour`` where the steps' fleets differ; ``timelines`` are the steps'
    minute by minute records."""
    from inferfleet.cli.bench.results import OutputDir, ResultsWriter
    from inferfleet.cli.bench.runner import write_report
    from inferfleet.cli.bench.variants import paired_ratios

    output = OutputDir.claim(out)
    writer = ResultsWriter(output, header)
    latencies = []
    for identity, run in steps:
        result = step_summary(
            run, open_loop=open_loop, price_per_hour=price_per_hour, identity=identity,
            fleet_cost_per_hour=None if step_costs is None else step_costs[identity.id],
            timeline=() if timelines is None else timelines[identity.id],
        )  # fmt: skip
        rows = request_rows(
            run,
            step=identity.id,
            variant=identity.variant,
            repeat=identity.repeat,
            users=identity.users,
            rate=identity.rate,
        )
        writer.add_step(result, rows)
        latencies.append(plotted_latencies(run))
    comparisons = paired_ratios(writer.results.steps, writer.results.variants) if compared else []
    writer.finish(partial=False, comparisons=comparisons)
    write_report(output, writer.results, latencies)
    return writer.results
