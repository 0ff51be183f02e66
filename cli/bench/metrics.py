"""Per-step figures computed from request records: metrics as classes, in one registry.

A metric is one class with its key, title, unit and whether the A/B ratios
compare it and the plots draw it; :data:`Metric.registry` lists them all, and the
report, plots, ratios and SLOs read that registry. Latency metrics turn records
into milliseconds (one value per request, or per gap for ITL); step metrics read
one number off a :class:`~inferfleet.cli.bench.models.StepResult`.

Warm-up requests and requests cancelled by Ctrl-C are recorded but not measured.
Each open-loop latency exists twice, from the actual send and from the scheduled
send.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from inferfleet.cli.bench.config import MAX_REQUESTS_PER_STEP, MAX_TOKENS_PER_STEP
from inferfleet.cli.bench.engine import StepOutcome
from inferfleet.cli.bench.models import (
    ClientHealth,
    Goodput,
    InstanceRow,
    LagFigures,
    LatencyBrief,
    LatencyDistribution,
    SloLimit,
    StepResult,
)
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.server_metrics import server_figures

QUANTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
CANCELLED = "cancelled"
# A client process this busy (% of one core) had no CPU to spare; a machine this busy
# (% of all cores) starved whatever ran on it.
CLIENT_CPU_SATURATED_PERCENT = 85.0
MACHINE_CPU_SATURATED_PERCENT = 90.0
# Above this share of 0 ms gaps a step says its per-gap ITL is not the server's.
COALESCED_NOTE_FRACTION = 0.05


class Metric:
    """A figure of a step. Subclasses with a ``key`` register themselves."""

    key: ClassVar[str]
    label: ClassVar[str]  # short, for tables: "TTFT"
    title: ClassVar[str]  # long, for axes: "Time to first token"
    unit: ClassVar[str]
    compared: ClassVar[tuple[str | None, ...]] = ()  # points the A/B ratios compare
    plotted: ClassVar[bool] = False  # drawn against load (latency: its p99)
    higher_is_better: ClassVar[bool] = False
    registry: ClassVar[dict[str, type[Metric]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "key" in cls.__dict__:
            Metric.registry[cls.key] = cls

    @classmethod
    def value(cls, step: StepResult, point: str | None = None) -> float | None:
        raise NotImplementedError

    @classmethod
    def name(cls, point: str | None) -> str:
        return f"{cls.label} {point}" if point else cls.label


class LatencyMetric(Metric):
    """Milliseconds per request (or per gap); summarised as a :class:`LatencyDistribution`."""

    unit = "ms"
    cdf: ClassVar[bool] = False  # drawn as a CDF per load
    open_loop_only: ClassVar[bool] = False

    @classmethod
    def values(cls, records: Sequence[RequestRecord]) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def per_request(cls, record: RequestRecord) -> float | None:
        """This request's own value, for per-request SLO checks (goodput)."""
        values = cls.values([record])
        return float(values.mean()) if values.size else None

    @classmethod
    def value(cls, step: StepResult, point: str | None = "p50") -> float | None:
        figures = step.latency.get(cls.key)
        return getattr(figures, point or "p50") if figures is not None else None


class StepMetric(Metric):
    """One number per step, read off the step's result."""

    attribute: ClassVar[str]
    compared = (None,)

    @classmethod
    def value(cls, step: StepResult, point: str | None = None) -> float | None:
        return getattr(step, cls.attribute)


class SinceSend(LatencyMetric):
    """From the send (``from_schedule``: from when it was due) to a moment of the answer."""

    moment: ClassVar[str]  # the RequestRecord attribute that ends the interval
    from_schedule: ClassVar[bool] = False

    @classmethod
    def values(cls, records: Sequence[RequestRecord]) -> np.ndarray:
        ends = []
        for record in records:
            end = getattr(record, cls.moment)
            if end is not None:
                scheduled = cls.from_schedule and record.scheduled is not None
                ends.append((end - (record.scheduled if scheduled else record.sent)) * 1000.0)
        return np.array(ends, dtype=float)


class TimeToFirstToken(SinceSend):
    """From sending the request to its first token."""

    key = "ttft_ms"
    label = "TTFT"
    title = "Time to first token"
    compared = ("p50", "p99")
    plotted = True
    cdf = True
    moment = "first_token"


class TimeToFirstTokenFromSchedule(TimeToFirstToken):
    """From when the request was due (open loop) to its first token: includes client queueing."""

    key = "ttft_from_schedule_ms"
    label = "TTFT from schedule"
    title = "Time to first token from the scheduled send"
    compared = ()
    plotted = False
    cdf = False
    open_loop_only = True
    from_schedule = True


class InterTokenLatency(LatencyMetric):
    """Every gap between consecutive chunks after the first token."""

    key = "itl_ms"
    label = "ITL"
    title = "Inter-token latency"
    compared = ("p50",)
    cdf = True

    @classmethod
    def values(cls, records: Sequence[RequestRecord]) -> np.ndarray:
        gaps = [np.frombuffer(record.itl_ms, dtype=float) for record in records if record.itl_ms]
        return np.concatenate(gaps) if gaps else np.empty(0)


class InterTokenLatencyPerRequest(LatencyMetric):
    """Each request's mean gap between chunks: stays true when a loaded client reads
    several chunks at once, which turns their per-gap ITL into zeros."""

    key = "itl_per_request_ms"
    label = "ITL per request"
    title = "Inter-token latency, mean per request"
    compared = ("p50",)

    @classmethod
    def values(cls, records: Sequence[RequestRecord]) -> np.ndarray:
        return np.array(
            [sum(record.itl_ms) / len(record.itl_ms) for record in records if record.itl_ms],
            dtype=float,
        )


class TimePerOutputToken(LatencyMetric):
    """(last token - first token) / (output tokens - 1): a request's decode speed."""

    key = "tpot_ms"
    label = "TPOT"
    title = "Time per output token"

    @classmethod
    def values(cls, records: Sequence[RequestRecord]) -> np.ndarray:
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


class EndToEnd(SinceSend):
    """From sending the request to the end of its answer."""

    key = "e2e_ms"
    label = "E2E"
    title = "End-to-end latency"
    compared = ("p50", "p99")
    plotted = True
    cdf = True
    moment = "end"


class EndToEndFromSchedule(EndToEnd):
    key = "e2e_from_schedule_ms"
    label = "E2E from schedule"
    title = "End-to-end latency from the scheduled send"
    compared = ()
    plotted = False
    cdf = False
    open_loop_only = True
    from_schedule = True


class OutputTokensPerMinute(StepMetric):
    key = "output_tokens_per_min"
    label = "tokens/min"
    title = "Output tokens per minute"
    unit = "tokens/min"
    attribute = "output_tokens_per_min"
    plotted = True
    higher_is_better = True


class RequestsPerSecond(StepMetric):
    key = "requests_per_s"
    label = "req/s"
    title = "Requests per second"
    unit = "req/s"
    attribute = "requests_per_s"
    higher_is_better = True


class TokensPerInstancePerMinute(StepMetric):
    key = "output_tokens_per_instance_per_min"
    label = "tokens/min per instance"
    title = "Output tokens per instance per minute"
    unit = "tokens/min"
    attribute = "output_tokens_per_instance_per_min"
    compared = ()
    higher_is_better = True


def latency_metrics(open_loop: bool) -> list[type[LatencyMetric]]:
    return [
        metric
        for metric in Metric.registry.values()
        if issubclass(metric, LatencyMetric) and (open_loop or not metric.open_loop_only)
    ]


def distribution(values: np.ndarray) -> LatencyDistribution:
    """p50/p90/p99/p99.9/mean (and the count behind them); None when nothing was measured."""
    if values.size == 0:
        return LatencyDistribution()
    points = np.percentile(values, list(QUANTILES.values()))
    return LatencyDistribution(
        **{name: round(float(point), 3) for name, point in zip(QUANTILES, points, strict=True)},
        mean=round(float(values.mean()), 3),
        count=int(values.size),
    )


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_loop_lag_ms: float
    max_dispatch_lag_ms: float
    max_error_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class StepIdentity:
    """Which step of the run the figures belong to."""

    id: int = 0
    variant: str = "default"
    repeat: int = 0
    load: float = 0.0
    users: int | None = None
    rate: float | None = None
    instances: int | None = None
    target_config: str | None = None
    schedule_hash: str = ""


@dataclass(slots=True)
class StepFigures:
    """A measured step: its typed result and the raw latencies the plots draw."""

    result: StepResult
    latencies: dict[str, np.ndarray]

    @property
    def summary(self) -> dict:
        return self.result.model_dump(mode="json")


def measure_step(
    outcome: StepOutcome,
    *,
    open_loop: bool,
    thresholds: Thresholds,
    price_per_hour: float | None = None,
    instances: int | None = None,
    window: tuple[float, float] | None = None,
    identity: StepIdentity | None = None,
    slo: Sequence[SloLimit] = (),
) -> StepFigures:
    """Figures of one step; throughput over ``window`` (perf_counter seconds) when given.

    A ``--duration`` step passes its measured window: every token received in it
    counts, whichever request it belongs to, so neither the warm-up ramp nor
    the drain after the last send bends tokens/min. Without a window (``--requests``)
    throughput runs from the first measured send to the last measured answer.
    """
    identity = identity or StepIdentity(instances=instances)
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
    client = client_health(outcome, measured, open_loop=open_loop)
    failures = failure_reasons(len(measured), failed, thresholds.max_error_rate)
    reasons = failures + invalid_reasons(
        client, thresholds, stopped=outcome.stopped, capped=outcome.capped
    )
    coalesced = coalesced_fraction(succeeded)
    result = StepResult(
        id=identity.id,
        variant=identity.variant,
        repeat=identity.repeat,
        load=identity.load,
        users=identity.users,
        rate=identity.rate,
        instances=identity.instances,
        target_config=identity.target_config,
        partial=outcome.stopped,
        schedule_hash=identity.schedule_hash,
        requests=len(measured),
        succeeded=len(succeeded),
        errors=sum(failed.values()),
        errors_by_kind=dict(sorted(failed.items())),
        errors_by_class=dict(sorted(Counter(r.error_class for r in measured if r.error).items())),
        warmup_requests=sum(1 for r in outcome.records if r.warmup),
        cancelled_requests=sum(1 for r in outcome.records if r.error == CANCELLED),
        measured_seconds=round(seconds, 3),
        latency={key: distribution(values) for key, values in latencies.items()},
        output_tokens=round(output_tokens, 1),
        output_tokens_per_min=round(tokens_per_min, 1),
        requests_per_s=round(len(finished) / seconds, 3) if seconds > 0 else 0.0,
        achieved_concurrency=achieved_concurrency(streams, window),
        token_source=_token_source(succeeded),
        output_length_mismatches=sum(1 for r in succeeded if r.output_tokens != r.requested_tokens),
        per_instance=per_instance(succeeded, streams, window),
        requests_without_instance=sum(1 for r in succeeded if r.instance is None),
        emulated=any(r.emulated for r in succeeded),
        cost_per_million_output_tokens=cost_per_million(
            tokens_per_min, price_per_hour, identity.instances
        ),
        goodput=goodput(succeeded, streams, window, slo, latencies) if slo else None,
        coalesced_gaps=coalesced,
        server_prompt_tokens_ratio=server_prompt_ratio(succeeded),
        server_metrics=server_figures(outcome.server_pages, window),
        notes=coalesced_notes(coalesced),
        client=client,
        failed=bool(failures),
        valid=not reasons,
        invalid_reasons=reasons,
    )
    return StepFigures(result=result, latencies=latencies)


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


def achieved_concurrency(
    records: Sequence[RequestRecord], window: tuple[float, float]
) -> float | None:
    """Time-weighted requests in flight over ``window``, as the client saw them."""
    start, end = window
    if end <= start:
        return None
    busy = sum(
        max(0.0, min(record.end, end) - max(record.sent, start))
        for record in records
        if record.end is not None and record.sent
    )
    return round(busy / (end - start), 3)


def server_prompt_ratio(records: Sequence[RequestRecord]) -> float | None:
    """Mean of the server's prompt token count (its usage report) over the client's."""
    ratios = [
        record.usage_prompt_tokens / record.prompt_tokens
        for record in records
        if record.usage_prompt_tokens and record.prompt_tokens
    ]
    return round(sum(ratios) / len(ratios), 4) if ratios else None


def coalesced_fraction(records: Sequence[RequestRecord]) -> float | None:
    """Share of the gaps between chunks measured as 0: chunks the client read together."""
    gaps = sum(len(record.itl_ms) for record in records)
    if not gaps:
        return None
    return round(sum(record.coalesced for record in records) / gaps, 4)


def coalesced_notes(fraction: float | None) -> list[str]:
    if fraction is None or fraction < COALESCED_NOTE_FRACTION:
        return []
    return [
        f"{fraction:.0%} of the gaps between chunks were read together with the chunk before "
        "(0 ms per gap): per-gap ITL understates the server's pace; read ITL per request "
        "(the mean of each request's gaps)"
    ]


def goodput(
    succeeded: Sequence[RequestRecord],
    streams: Sequence[RequestRecord],
    window: tuple[float, float],
    slo: Sequence[SloLimit],
    latencies: dict[str, np.ndarray],
) -> Goodput:
    """Requests (and their tokens) that met every SLO limit on their own, per second.

    A request meets a limit when its own value is within it (for ITL, the mean of
    its gaps); the step meets the SLO when each limited percentile is.
    """
    metrics = [(Metric.registry[limit.metric], limit) for limit in slo]
    good = [
        record
        for record in succeeded
        if all(
            (value := metric.per_request(record)) is not None and value <= limit.limit_ms
            for metric, limit in metrics
        )
    ]
    good_ids = {id(record) for record in good}
    seconds = window[1] - window[0]
    tokens = sum(tokens_between(r, *window) for r in streams if id(r) in good_ids)
    misses = []
    for _, limit in metrics:
        values = latencies.get(limit.metric, np.empty(0))
        figure = getattr(distribution(values), limit.point) if values.size else None
        if figure is None or figure > limit.limit_ms:
            shown = "nothing measured" if figure is None else f"{figure:,.1f} ms"
            misses.append(f"{limit.name} {shown} > {limit.limit_ms:g} ms")
    return Goodput(
        requests=len(good),
        requests_per_s=round(len(good) / seconds, 3) if seconds > 0 else 0.0,
        output_tokens_per_min=round(tokens / seconds * 60.0, 1) if seconds > 0 else 0.0,
        slo_met=not misses,
        misses=misses,
    )


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
) -> list[InstanceRow]:
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
    return [
        InstanceRow(
            instance=instance,
            requests=len(group),
            output_tokens_per_min=(
                round(tokens[instance] / seconds * 60.0, 1) if seconds > 0 else 0.0
            ),
            ttft_ms=_brief(TimeToFirstToken.values(group)),
            e2e_ms=_brief(EndToEnd.values(group)),
        )
        for instance, group in sorted(groups.items())
    ]


def _brief(values: np.ndarray) -> LatencyBrief:
    full = distribution(values)
    return LatencyBrief(p50=full.p50, p99=full.p99, mean=full.mean)


def cost_per_million(
    tokens_per_min: float, price_per_hour: float | None, instances: int | None
) -> float | None:
    if not price_per_hour or not instances or tokens_per_min <= 0:
        return None
    millions_per_hour = tokens_per_min * 60.0 / 1e6
    return round(price_per_hour * instances / millions_per_hour, 4)


def client_health(
    outcome: StepOutcome, measured: Sequence[RequestRecord], *, open_loop: bool
) -> ClientHealth:
    """Event-loop lag per process (worst process counts), dispatch lag, and CPU used."""
    worst_p99, worst_max = 0.0, 0.0
    for lags, times in zip(outcome.loop_lag_ms, outcome.loop_lag_at, strict=True):
        samples = np.frombuffer(lags, dtype=float)
        stamps = np.frombuffer(times, dtype=float)
        in_window = samples[stamps >= outcome.measured_from]
        if in_window.size:
            worst_p99 = max(worst_p99, float(np.percentile(in_window, 99)))
            worst_max = max(worst_max, float(in_window.max()))
    dispatch = waits = None
    held = 0
    if open_loop:
        dispatch = lag_figures(np.array([r.dispatch_lag_s for r in measured], dtype=float))
        wait_s = np.array([r.inflight_wait_s for r in measured], dtype=float)
        waits = lag_figures(wait_s)
        held = int(np.count_nonzero(wait_s))
    processes = len(outcome.loop_lag_ms)
    chunks = sum(record.chunks for record in outcome.records)
    seconds = outcome.seconds
    return ClientHealth(
        loop_lag_ms=LagFigures(p99=round(worst_p99, 3), max=round(worst_max, 3)),
        dispatch_lag_ms=dispatch,
        inflight_wait_ms=waits,
        inflight_waits=held,
        processes=processes,
        process_cpu_percent=(
            round(outcome.process_cpu_s / seconds / processes * 100.0, 1)
            if seconds > 0 and processes
            else None
        ),
        machine_cpu_percent=(
            round(outcome.machine_busy_s / outcome.machine_total_s * 100.0, 1)
            if outcome.machine_total_s > 0
            else None
        ),
        cpu_us_per_token=round(outcome.process_cpu_s / chunks * 1e6, 2) if chunks else None,
    )


def lag_figures(seconds: np.ndarray) -> LagFigures:
    """p50, p99 and max of delays given in seconds, in milliseconds."""
    if not seconds.size:
        return LagFigures()
    p50, p99 = np.percentile(seconds * 1000.0, [50, 99])
    return LagFigures(
        p50=round(float(p50), 3),
        p99=round(float(p99), 3),
        max=round(float(seconds.max()) * 1000.0, 3),
    )


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


def starved_side(client: ClientHealth) -> str:
    """Which side ran out of CPU when the client fell behind: its process, or the machine."""
    process, machine = client.process_cpu_percent, client.machine_cpu_percent
    if process is not None and process >= CLIENT_CPU_SATURATED_PERCENT:
        return (
            f"the client process ran out of CPU ({process:.0f}% of a core per process; "
            "add --workers or use a bigger client machine)"
        )
    if machine is not None and machine >= MACHINE_CPU_SATURATED_PERCENT:
        return (
            f"the machine ran out of CPU ({machine:.0f}% of all cores busy, the client "
            f"{process or 0:.0f}% of a core; other processes, such as a server on this host, "
            "took it: run the client elsewhere)"
        )
    shown = "unknown" if machine is None else f"{machine:.0f}%"
    return (
        f"the client was held up without running out of CPU (client {process or 0:.0f}% of a "
        f"core, machine {shown} busy)"
    )


def invalid_reasons(
    client: ClientHealth, thresholds: Thresholds, *, stopped: bool, capped: bool = False
) -> list[str]:
    """Why this step's figures do not describe the target: the client, or a cut-short step."""
    reasons = []
    lag = client.loop_lag_ms.p99 or 0.0
    if lag > thresholds.max_loop_lag_ms:
        reasons.append(
            f"client bottleneck: event-loop lag p99 {lag:.1f} ms > "
            f"{thresholds.max_loop_lag_ms:g} ms: {starved_side(client)}"
        )
    dispatch = client.dispatch_lag_ms.p99 if client.dispatch_lag_ms else None
    if dispatch is not None and dispatch > thresholds.max_dispatch_lag_ms:
        reasons.append(
            f"client bottleneck: dispatch lag p99 {dispatch:.1f} ms > "
            f"{thresholds.max_dispatch_lag_ms:g} ms (requests left later than scheduled): "
            f"{starved_side(client)}"
        )
    waited = client.inflight_wait_ms.max if client.inflight_wait_ms else None
    if waited is not None and waited > thresholds.max_dispatch_lag_ms:
        reasons.append(
            f"not open loop: {client.inflight_waits:,} requests waited in the client for a "
            f"--max-inflight slot (up to {waited:,.1f} ms > {thresholds.max_dispatch_lag_ms:g} "
            "ms): the target fell behind the offered rate; raise --max-inflight or lower --rate"
        )
    if capped:
        reasons.append(
            f"stopped sending at bench's memory bound of one step ({MAX_REQUESTS_PER_STEP:,} "
            f"requests or {MAX_TOKENS_PER_STEP:,} output tokens); shorten --duration"
        )
    if stopped:
        reasons.append("interrupted: partial step")
    return reasons
