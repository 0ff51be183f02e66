"""Records with hand-set timestamps, so every figure derived from them is known."""

from __future__ import annotations

from array import array

from inferfleet.cli.bench.engine import StepOutcome
from inferfleet.cli.bench.metrics import Thresholds
from inferfleet.cli.bench.records import RequestRecord

LENIENT = Thresholds(max_loop_lag_ms=20, max_dispatch_lag_ms=20)


def streamed(
    index: int,
    sent: float,
    *,
    ttft: float,
    gap: float,
    tokens: int,
    instance: str | None = "a",
    usage: bool = True,
    scheduled: float | None = None,
    warmup: bool = False,
) -> RequestRecord:
    record = RequestRecord(index, 10, tokens, scheduled=scheduled, sent=sent, warmup=warmup)
    for k in range(tokens):
        record.token(sent + ttft + k * gap)
    record.end = sent + ttft + (tokens - 1) * gap
    record.usage_tokens = tokens if usage else None
    record.instance = instance
    return record


def outcome(records: list[RequestRecord], lags: list[float] | None = None, **kw) -> StepOutcome:
    lag_values = array("d", lags or [0.1])
    return StepOutcome(
        records=records,
        started=0.0,
        measured_from=0.0,
        finished=max(r.end or 0 for r in records),
        loop_lag_ms=[lag_values],
        loop_lag_at=[array("d", [1.0] * len(lag_values))],
        **kw,
    )
