"""Records with hand-set timestamps, so every figure derived from them is known."""

from __future__ import annotations

from array import array

from inferfleet.cli.bench.engine import StepOutcome
from inferfleet.cli.bench.metrics import Thresholds
from inferfleet.cli.bench.models import StepResult
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


def step_result(**fields: object) -> StepResult:
    """A StepResult with plausible figures; ``fields`` override any of them."""
    latency = {
        key: {"p50": 10.0, "p90": 12.0, "p99": 20.0, "p999": 25.0, "mean": 11.0, "count": 10}
        for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
    }
    base: dict = {
        "id": 1, "variant": "default", "repeat": 0, "load": 4.0, "users": 4,
        "schedule_hash": "", "requests": 10, "succeeded": 10, "errors": 0,
        "errors_by_kind": {}, "warmup_requests": 0, "cancelled_requests": 0,
        "measured_seconds": 1.0, "latency": latency, "output_tokens": 100.0,
        "output_tokens_per_min": 6000.0, "requests_per_s": 10.0, "token_source": "usage",
        "output_length_mismatches": 0, "per_instance": [], "requests_without_instance": 0,
        "emulated": False, "cost_per_million_output_tokens": None,
        "client": {"loop_lag_ms": {"p99": 1.0, "max": 2.0}}, "failed": False, "valid": True,
        "invalid_reasons": [],
    }  # fmt: skip
    for name, value in fields.items():
        if name in latency:
            base["latency"][name] = {**latency[name], **value}  # type: ignore[dict-item]
        else:
            base[name] = value
    return StepResult.model_validate(base)
