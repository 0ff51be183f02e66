"""Per-step figures computed from request records: latencies, throughput, errors, cost.

Warm-up requests and requests cancelled by Ctrl-C are recorded but not measured.
Latencies are in milliseconds; each open-loop latency exists twice, from the
actual send and from the scheduled send.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inferfleet.cli.bench.config import MAX_REQUESTS_PER_STEP, MAX_TOKENS_PER_STEP
from inferfleet.cli.bench.engine import StepOutcome
from inferfleet.cli.bench.records import RequestRecord

QUANTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
CANCELLED = "cancelled"


def distribution(values: np.ndarray) -> dict[str, float | int | None]:
    """p50/p90/p99/p99.9/mean (and the count behind them); None when nothing was measured."""
    if values.size == 0:
        return {**dict.fromkeys(QUANTILES), "mean": None, "count": 0}
    points = np.percentile(values, list(QUANTILES.values()))
    summary: dict[str, float | int | None] = {
        name: round(float(point), 3) for name, point in zip(QUANTILES, points, strict=True)
    }
    summary["mean"] = round(float(values.mean()), 3)
    summary["count"] = int(values.size)
    return summary


class LatencyMetric(ABC):
    key: str
    title: str

    @abstractmethod
    def values(self, records: Sequence[RequestRecord]) -> np.ndarray:
        """Milliseconds, one value per request (or per gap, for ITL)."""


class TimeToFirstToken(LatencyMetric):
    """From sending the request (``from_schedule``: from when it was due) to the first token."""

    def __init__(self, *, from_schedule: bool = False) -> None:
        self.from_schedule = from_schedule
        self.key = "ttft_from_schedule_ms" if from_schedule else "ttft_ms"
        self.title = "TTFT from schedule" if from_schedule else "TTFT"

    def values(self, records: Sequence[RequestRecord]) -> np.ndarray:
        return np.array(
            [
                (record.first_token - _origin(record, self.from_schedule)) * 1000.0
                for record in records
                if record.first_token is not None
            ],
            dtype=float,
        )


class InterTokenLatency(LatencyMetric):
    """Every gap between consecutive chunks after the first token."""

    key = "itl_ms"
    title = "Inter-token latency"

    def values(self, records: Sequence[RequestRecord]) -> np.ndarray:
        gaps = [np.frombuffer(record.itl_ms, dtype=float) for record in records if record.itl_ms]
        return np.concatenate(gaps) if gaps else np.empty(0)


class TimePerOutputToken(LatencyMetric):
    """(last token - first token) / (output tokens - 1): a request's decode speed."""

    key = "tpot_ms"
    title = "Time per output token"

    def values(self, records: Sequence[RequestRecord]) -> np.ndarray:
        return np.array(
            [
                (record.last_token - record.first_token) * 1000.0 / (record.output_tokens - 1)
                for record in records
                if record.first_token is not None
                and record.last_token is not None
                and record.output_tokens > 1
            ],
            dtype=float,
        )


class EndToEnd(LatencyMetric):
    def __init__(self, *, from_schedule: bool = False) -> None:
        self.from_schedule = from_schedule
        self.key = "e2e_from_schedule_ms" if from_schedule else "e2e_ms"
        self.title = "E2E from schedule" if from_schedule else "E2E"

    def values(self, records: Sequence[RequestRecord]) -> np.ndarray:
        return np.array(
            [
                (record.end - _origin(record, self.from_schedule)) * 1000.0
                for record in records
                if record.end is not None
            ],
            dtype=float,
        )


def _origin(record: RequestRecord, from_schedule: bool) -> float:
    return record.scheduled if from_schedule and record.scheduled is not None else record.sent


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_loop_lag_ms: float
    max_dispatch_lag_ms: float
    max_error_rate: float = 0.0


@dataclass(slots=True)
class StepFigures:
    """A measured step: the JSON summary and the raw latencies the plots draw."""

    summary: dict
    latencies: dict[str, np.ndarray]


def latency_metrics(open_loop: bool) -> list[LatencyMetric]:
    metrics: list[LatencyMetric] = [
        TimeToFirstToken(),
        InterTokenLatency(),
        TimePerOutputToken(),
        EndToEnd(),
    ]
    if open_loop:
        metrics += [TimeToFirstToken(from_schedule=True), EndToEnd(from_schedule=True)]
    return metrics


def measure_step(
    outcome: StepOutcome,
    *,
    open_loop: bool,
    thresholds: Thresholds,
    price_per_hour: float | None = None,
    instances: int | None = None,
    window: tuple[float, float] | None = None,
) -> StepFigures:
    """Figures of one step; throughput over ``window`` (perf_counter seconds) when given.

    A ``--duration`` step passes its measured window: every token received in it
    counts, whichever request it belongs to, so neither the warm-up ramp nor
    the drain after the last send bends tokens/min. Without a window (``--requests``)
    throughput runs from the first measured send to the last measured answer.
    """
    measured = [r for r in outcome.records if not r.warmup and r.error != CANCELLED]
    succeeded = [r for r in measured if r.ok]
    failed = Counter(r.error for r in measured if r.error is not None)
    if window is None:
        window = _span(succeeded)
        streams, finished = succeeded, succeeded
    else:
        streams = [r for r in outcome.records if r.error != CANCELLED]
        finished = [r for r in streams if r.ok and window[0] <= r.end < window[1]]  # type: ignore[operator]
    seconds = window[1] - window[0]
    output_tokens = sum(tokens_between(r, *window) for r in streams)
    tokens_per_min = output_tokens / seconds * 60.0 if seconds > 0 else 0.0

    latencies = {metric.key: metric.values(succeeded) for metric in latency_metrics(open_loop)}
    summary: dict = {
        "requests": len(measured),
        "succeeded": len(succeeded),
        "errors": sum(failed.values()),
        "errors_by_kind": dict(sorted(failed.items())),
        "warmup_requests": sum(1 for r in outcome.records if r.warmup),
        "cancelled_requests": sum(1 for r in outcome.records if r.error == CANCELLED),
        "measured_seconds": round(seconds, 3),
        **{key: distribution(values) for key, values in latencies.items()},
        "output_tokens": round(output_tokens, 1),
        "output_tokens_per_min": round(tokens_per_min, 1),
        "requests_per_s": round(len(finished) / seconds, 3) if seconds > 0 else 0.0,
        "token_source": _token_source(succeeded),
        "output_length_mismatches": sum(
            1 for r in succeeded if r.output_tokens != r.requested_tokens
        ),
        "per_instance": per_instance(succeeded, streams, window),
        "requests_without_instance": sum(1 for r in succeeded if r.instance is None),
        "emulated": any(r.emulated for r in succeeded),
        "cost_per_million_output_tokens": cost_per_million(
            tokens_per_min, price_per_hour, instances
        ),
    }
    client = client_health(outcome, measured, open_loop=open_loop)
    summary["client"] = client
    failures = failure_reasons(len(measured), failed, thresholds.max_error_rate)
    summary["failed"] = bool(failures)
    reasons = failures + invalid_reasons(
        client, thresholds, stopped=outcome.stopped, capped=outcome.capped
    )
    summary["valid"] = not reasons
    summary["invalid_reasons"] = reasons
    return StepFigures(summary=summary, latencies=latencies)


def _span(records: Sequence[RequestRecord]) -> tuple[float, float]:
    """From the first measured send to the last measured answer."""
    if not records:
        return (0.0, 0.0)
    return min(r.sent for r in records), max(r.end for r in records if r.end is not None)


def tokens_between(record: RequestRecord, start: float, end: float) -> float:
    """Output tokens of ``record`` received in [start, end].

    Chunk times are rebuilt from the first token and the gaps; when the server
    reported usage, each chunk carries usage / chunks tokens.
    """
    if record.first_token is None or record.chunks == 0:
        return 0.0
    per_chunk = record.output_tokens / record.chunks
    if start <= record.first_token and (record.last_token or record.first_token) <= end:
        return float(record.output_tokens)
    gaps = np.frombuffer(record.itl_ms, dtype=float) / 1000.0
    times = record.first_token + np.concatenate(([0.0], np.cumsum(gaps)))
    return float(np.count_nonzero((times >= start) & (times <= end))) * per_chunk


def _token_source(records: Sequence[RequestRecord]) -> str | None:
    # Non-streaming answers (classifiers) carry no tokens to count either way.
    sources = {r.token_source for r in records if r.chunks or r.usage_tokens is not None}
    if not sources:
        return None
    return sources.pop() if len(sources) == 1 else "mixed"


def per_instance(
    measured: Sequence[RequestRecord],
    streams: Sequence[RequestRecord],
    window: tuple[float, float],
) -> list[dict]:
    """Rows per instance (header or stream field): how evenly the load balancer spread work."""
    groups: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in measured:
        if record.instance is not None:
            groups[record.instance].append(record)
    tokens: Counter[str] = Counter()
    for record in streams:
        if record.instance is not None:
            tokens[record.instance] += tokens_between(record, *window)
    seconds = window[1] - window[0]
    rows = []
    for instance, group in sorted(groups.items()):
        ttft = TimeToFirstToken().values(group)
        e2e = EndToEnd().values(group)
        rows.append(
            {
                "instance": instance,
                "requests": len(group),
                "output_tokens_per_min": (
                    round(tokens[instance] / seconds * 60.0, 1) if seconds > 0 else 0.0
                ),
                "ttft_ms": _brief(ttft),
                "e2e_ms": _brief(e2e),
            }
        )
    return rows


def _brief(values: np.ndarray) -> dict[str, float | None]:
    full = distribution(values)
    return {key: full[key] for key in ("p50", "p99", "mean")}  # type: ignore[misc]


def cost_per_million(
    tokens_per_min: float, price_per_hour: float | None, instances: int | None
) -> float | None:
    if not price_per_hour or not instances or tokens_per_min <= 0:
        return None
    millions_per_hour = tokens_per_min * 60.0 / 1e6
    return round(price_per_hour * instances / millions_per_hour, 4)


def client_health(
    outcome: StepOutcome, measured: Sequence[RequestRecord], *, open_loop: bool
) -> dict:
    """Event-loop lag per process (worst process counts) and open-loop dispatch lag."""
    worst_p99, worst_max = 0.0, 0.0
    for lags, times in zip(outcome.loop_lag_ms, outcome.loop_lag_at, strict=True):
        samples = np.frombuffer(lags, dtype=float)
        stamps = np.frombuffer(times, dtype=float)
        in_window = samples[stamps >= outcome.measured_from]
        if in_window.size:
            worst_p99 = max(worst_p99, float(np.percentile(in_window, 99)))
            worst_max = max(worst_max, float(in_window.max()))
    health: dict = {
        "loop_lag_ms": {"p99": round(worst_p99, 3), "max": round(worst_max, 3)},
        "processes": len(outcome.loop_lag_ms),
    }
    if open_loop:
        dispatch = np.array([r.dispatch_lag_s * 1000.0 for r in measured], dtype=float)
        health["dispatch_lag_ms"] = {
            "p99": round(float(np.percentile(dispatch, 99)), 3) if dispatch.size else None,
            "max": round(float(dispatch.max()), 3) if dispatch.size else None,
        }
    return health


def failure_reasons(measured: int, failed: Counter, max_error_rate: float) -> list[str]:
    """Why the target failed this step: no answers, or more errors than allowed."""
    errors = sum(failed.values())
    if measured == 0:
        return ["no request was measured"]
    if errors == measured:
        return [f"no request succeeded: all {measured:,} failed ({describe_errors(failed)})"]
    if errors / measured > max_error_rate:
        return [
            f"{errors:,} of {measured:,} requests failed ({errors / measured:.2%}: "
            f"{describe_errors(failed)}), over --max-error-rate {max_error_rate:g}"
        ]
    return []


def describe_errors(failed: Counter) -> str:
    return ", ".join(f"{kind} x{count:,}" for kind, count in failed.most_common(3)) + (
        ", ..." if len(failed) > 3 else ""
    )


def invalid_reasons(
    client: dict, thresholds: Thresholds, *, stopped: bool, capped: bool = False
) -> list[str]:
    """Why this step's figures do not describe the target: the client, or a cut-short step."""
    reasons = []
    lag = client["loop_lag_ms"]["p99"]
    if lag > thresholds.max_loop_lag_ms:
        reasons.append(
            f"client bottleneck: event-loop lag p99 {lag:.1f} ms > "
            f"{thresholds.max_loop_lag_ms:g} ms "
            "(add --workers or use a bigger client machine)"
        )
    dispatch = (client.get("dispatch_lag_ms") or {}).get("p99")
    if dispatch is not None and dispatch > thresholds.max_dispatch_lag_ms:
        reasons.append(
            f"client bottleneck: dispatch lag p99 {dispatch:.1f} ms > "
            f"{thresholds.max_dispatch_lag_ms:g} ms (requests left later than scheduled)"
        )
    if capped:
        reasons.append(
            f"stopped sending at bench's memory bound of one step ({MAX_REQUESTS_PER_STEP:,} "
            f"requests or {MAX_TOKENS_PER_STEP:,} output tokens); shorten --duration"
        )
    if stopped:
        reasons.append("interrupted: partial step")
    return reasons
