"""A simulated run's figures in the shape of an ``inferfleet bench`` step.

The keys, units and rounding are the bench's (:func:`inferfleet.cli.bench.metrics.measure_step`),
so a simulated ``results.json`` compares with a measured one file to file. Inter-token
gaps come as (value, count) pairs from the simulator; their percentiles interpolate
exactly as numpy's do on the expanded list.
"""

from __future__ import annotations

import numpy as np

from inferfleet.cli.bench.metrics import QUANTILES, cost_per_million, distribution
from inferfleet.cli.sizing.simulator import SimulatedRun


def weighted_distribution(values: np.ndarray, counts: np.ndarray) -> dict[str, float | int | None]:
    """The bench's ``distribution`` of ``values``, each repeated ``counts`` times."""
    total = int(counts.sum()) if counts.size else 0
    if total == 0:
        return {**dict.fromkeys(QUANTILES), "mean": None, "count": 0}
    order = np.argsort(values, kind="stable")
    ordered, weights = values[order], counts[order]
    upper = np.cumsum(weights)  # rank (exclusive) where each value ends
    summary: dict[str, float | int | None] = {}
    for name, quantile in QUANTILES.items():
        position = quantile / 100.0 * (total - 1)
        below = int(np.floor(position))
        fraction = position - below
        low = ordered[np.searchsorted(upper, below, side="right")]
        high = ordered[np.searchsorted(upper, min(below + 1, total - 1), side="right")]
        summary[name] = round(float(low + fraction * (high - low)), 3)
    summary["mean"] = round(float(np.dot(ordered, weights) / total), 3)
    summary["count"] = total
    return summary


def step_summary(
    run: SimulatedRun,
    *,
    open_loop: bool,
    price_per_hour: float | None = None,
    instances: int | None = None,
) -> dict:
    """The figures of a bench :class:`StepResult` for a simulated run, marked ``simulated``."""
    measured = run.measured
    start, end = run.window
    seconds = end - start
    ttft = (run.first_token - run.sent)[measured] * 1000.0
    e2e = (run.end - run.sent)[measured] * 1000.0
    tokens = run.output_tokens[measured]
    span = (run.end - run.first_token)[measured]
    multi = tokens > 1
    tpot = span[multi] * 1000.0 / (tokens[multi] - 1)
    output_tokens = float(run.tokens_in_window.sum())
    tokens_per_min = output_tokens / seconds * 60.0 if seconds > 0 else 0.0
    finished = int(np.count_nonzero((run.end >= start) & (run.end < end)))
    latencies = {
        "ttft_ms": distribution(ttft).model_dump(),
        "itl_ms": weighted_distribution(run.itl_values_s * 1000.0, run.itl_counts),
        "tpot_ms": distribution(tpot).model_dump(),
        "e2e_ms": distribution(e2e).model_dump(),
    }
    if open_loop:
        # Nothing delays a simulated send: schedule and send coincide.
        latencies["ttft_from_schedule_ms"] = latencies["ttft_ms"]
        latencies["e2e_from_schedule_ms"] = latencies["e2e_ms"]
    count = int(np.count_nonzero(measured))
    client: dict = {"loop_lag_ms": {"p99": 0.0, "max": 0.0}, "processes": 0}
    if open_loop:
        client["dispatch_lag_ms"] = {"p99": 0.0, "max": 0.0}
    return {
        "requests": count,
        "succeeded": count,
        "errors": 0,
        "errors_by_kind": {},
        "warmup_requests": int(measured.size - count),
        "cancelled_requests": 0,
        "measured_seconds": round(seconds, 3),
        "latency": latencies,
        "output_tokens": round(output_tokens, 1),
        "output_tokens_per_min": round(tokens_per_min, 1),
        "requests_per_s": round(finished / seconds, 3) if seconds > 0 else 0.0,
        "token_source": "usage" if count else None,
        "output_length_mismatches": 0,
        "per_instance": per_instance(run, seconds),
        "requests_without_instance": 0,
        "emulated": False,
        "simulated": True,
        "cost_per_million_output_tokens": cost_per_million(
            tokens_per_min, price_per_hour, instances
        ),
        "client": client,
        "failed": not count,
        "valid": count > 0,
        "invalid_reasons": [] if count else ["no request succeeded"],
    }


def per_instance(run: SimulatedRun, seconds: float) -> list[dict]:
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
            {
                "instance": name,
                "requests": int(np.count_nonzero(mine)),
                "output_tokens_per_min": round(tokens / seconds * 60.0, 1) if seconds > 0 else 0.0,
                "ttft_ms": {key: getattr(ttft, key) for key in ("p50", "p99", "mean")},
                "e2e_ms": {key: getattr(e2e, key) for key in ("p50", "p99", "mean")},
            }
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
    for index in range(run.sent.size):
        sent_ms = round(float(run.sent[index]) * 1000.0, 3)
        rows.append(
            {
                "step": step,
                "variant": variant,
                "repeat": repeat,
                "users": users,
                "rate": rate,
                "index": index,
                "warmup": not bool(run.measured[index]),
                "scheduled_ms": sent_ms if rate is not None else None,
                "sent_ms": sent_ms,
                "dispatch_lag_ms": 0.0,
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
                "instance": run.replica_names[int(run.replica[index])],
                "status": 200,
                "error": None,
                "error_detail": "",
            }
        )
    return rows
