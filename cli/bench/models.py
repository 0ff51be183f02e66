"""What ``results.json`` holds, as pydantic models: the run, its steps, their figures.

``results.json`` is a :class:`RunResults` and ``results.schema.json`` next to it
is that model's JSON Schema. The report, the plots, the A/B ratios and anything
reading a run (``profile fit``) load these models, never raw keys:

>>> run = RunResults.load_file(Path("bench-results/results.json"))
>>> run.steps[0].latency["ttft_ms"].p99

Latency figures live in ``StepResult.latency`` keyed by the metric's ``key``
(see :mod:`.metrics`), so a new metric adds a key, not a field. Per-request
records (``RequestResult``) are the rows of ``requests.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from inferfleet.cli.bench.records import ERROR_CLASSES

SCHEMA_VERSION = 2


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LatencyDistribution(Model):
    """Milliseconds: percentiles and mean of the values measured, and how many there were."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    mean: float | None = None
    count: int = 0


class LatencyBrief(Model):
    p50: float | None = None
    p99: float | None = None
    mean: float | None = None


class InstanceRow(Model):
    """One instance behind the load balancer, named by its header or its stream."""

    instance: str
    requests: int
    output_tokens_per_min: float
    ttft_ms: LatencyBrief
    e2e_ms: LatencyBrief


class LagFigures(Model):
    p50: float | None = None
    p99: float | None = None
    max: float | None = None


class ClientHealth(Model):
    """Whether the client, not the server, set the pace of a step."""

    loop_lag_ms: LagFigures
    dispatch_lag_ms: LagFigures | None = None
    inflight_wait_ms: LagFigures | None = Field(
        None, description="Open loop: how long requests waited in the client for a "
        "--max-inflight slot (0 when the target kept up).",
    )  # fmt: skip
    inflight_waits: int = Field(0, description="Open loop: requests that waited for a slot.")
    processes: int = 1
    process_cpu_percent: float | None = Field(
        None, description="CPU the client processes used, as % of one core (100 = one core busy)."
    )
    machine_cpu_percent: float | None = Field(
        None, description="CPU busy on the whole machine, as % of all its cores."
    )
    cpu_us_per_token: float | None = Field(
        None, description="Client CPU time per streamed output token, microseconds."
    )


class Goodput(Model):
    """Requests that met every SLO limit, per second and as output tokens per minute."""

    requests: int
    requests_per_s: float
    output_tokens_per_min: float
    slo_met: bool = Field(description="Every step percentile within its SLO limit.")
    misses: list[str] = Field(default_factory=list, description="SLO limits the step missed.")


class ServerFigure(Model):
    """A figure the server exported while the step was measured (its /metrics)."""

    mean: float
    max: float
    samples: int
    series: list[str] = Field(description="The Prometheus series it was read from.")


class TimelinePoint(Model):
    """One minute of a simulated region (``simulate --config``): its load, instances, queue."""

    at_s: float = Field(description="End of the minute, seconds from the start of the run "
                        "(the warm-up included).")  # fmt: skip
    requests_per_s: float = Field(description="Requests the region received in the minute.")
    requests_per_target_per_minute: float | None = Field(
        description="The scaling metric: the minute's requests over the instances in service."
    )
    in_service: dict[str, int] = Field(description="Instances serving, per pool.")
    starting: dict[str, int] = Field(description="Instances asked for, not serving yet.")
    queued: int = Field(description="Requests waiting for a slot at the minute's end.")
    in_flight: int = Field(description="Requests sent and not answered at the minute's end.")
    ttft_p99_ms: float | None = Field(description="TTFT P99 of the requests sent in the minute.")


class StepResult(Model):
    """One measured step: a load (users or rate) for one variant, instance count and repeat."""

    id: int
    variant: str
    repeat: int
    load: float
    users: int | None = None
    rate: float | None = None
    instances: int | None = None
    target_config: str | None = Field(
        None, description="The target configuration the step ran on (a SageMaker endpoint config)."
    )
    partial: bool = False
    schedule_hash: str

    requests: int
    succeeded: int
    errors: int
    errors_by_kind: dict[str, int]
    errors_by_class: dict[str, int] = Field(
        default_factory=dict, description="Failed requests (never retried) by class: "
        + "; ".join(f"{name}: {meaning}" for name, meaning in ERROR_CLASSES.items()),
    )  # fmt: skip
    warmup_requests: int
    cancelled_requests: int
    measured_seconds: float
    latency: dict[str, LatencyDistribution]
    output_tokens: float
    output_tokens_per_min: float
    requests_per_s: float
    achieved_concurrency: float | None = Field(
        None, description="Time-weighted requests in flight during the measured window."
    )
    token_source: Literal["usage", "chunks", "mixed"] | None
    output_length_mismatches: int
    per_instance: list[InstanceRow]
    requests_without_instance: int
    emulated: bool
    simulated: bool = False
    cost_per_million_output_tokens: float | None
    goodput: Goodput | None = None
    coalesced_gaps: float | None = Field(
        None, description="Share of the gaps between chunks measured as 0 ms because the "
        "client read the chunks together (per-gap ITL collapses; ITL per request does not).",
    )  # fmt: skip
    server_metrics: dict[str, ServerFigure] = Field(
        default_factory=dict, description="The server's own view from --server-metrics: "
        "queue depth, requests in the batch, KV-cache use, batch size (keys of the registry).",
    )  # fmt: skip
    server_prompt_tokens_ratio: float | None = Field(
        None, description="The server's prompt tokens (usage report) / the client's count, "
        "mean over requests: how far the server's tokenizer and template differ.",
    )  # fmt: skip
    notes: list[str] = Field(
        default_factory=list, description="What the reader should know about the figures."
    )
    timeline: list[TimelinePoint] = Field(
        default_factory=list, description="simulate --config: the region minute by minute, "
        "as the load changed and the pools scaled.",
    )  # fmt: skip
    client: ClientHealth
    failed: bool
    valid: bool
    invalid_reasons: list[str]

    @property
    def load_text(self) -> str:
        if self.rate is not None:
            return f"{self.rate:g} req/s"
        return f"{self.users} users"

    @property
    def output_tokens_per_instance_per_min(self) -> float | None:
        return self.output_tokens_per_min / self.instances if self.instances else None


class Ratio(Model):
    """Variant / baseline of one figure, per repeat and as a geometric mean."""

    per_repeat: list[float | None]
    geomean: float | None
    min: float | None
    max: float | None


class Comparison(Model):
    load: float
    instances: int | None = None
    variant: str
    baseline: str
    pairs: int
    valid_pairs: int
    ratios: dict[str, Ratio]


class StudyCell(Model):
    """One figure of one variant at one instance count: geometric mean over repeats."""

    geomean: float | None
    min: float | None
    max: float | None


class StudyRow(Model):
    instances: int
    users: int
    e2e_p99_ms: dict[str, StudyCell]
    tokens_per_instance_per_min: dict[str, StudyCell]
    e2e_p99_improvement_pct: StudyCell = Field(
        description="How much lower the first variant's P99 E2E is than the second's, per pair."
    )
    throughput_improvement_pct: StudyCell = Field(
        description="How much higher the first variant's throughput per instance is, per pair."
    )


class Study(Model):
    """Users and instances scaled together, two variants compared: the routing study's table."""

    variants: tuple[str, str]
    users_per_instance: int
    rows: list[StudyRow]


class SloLimit(Model):
    metric: str
    point: str
    limit_ms: float

    @property
    def name(self) -> str:
        return f"{self.metric.removesuffix('_ms')}_{self.point}"


class MaxLoad(Model):
    """``--find-max-load``: the largest load found meeting the SLO, and where it stopped."""

    mode: Literal["users", "rate"]
    best: float | None = Field(description="Largest load measured that met the SLO.")
    failed_above: float | None = Field(description="Smallest load measured that missed it.")
    probes: list[tuple[float, bool]] = Field(description="(load, met) in the order measured.")
    note: str = ""


# A results.json holds summaries, not requests: far below this even for long sweeps.
MAX_RESULTS_BYTES = 64 * 2**20


class RunResults(Model):
    """A whole run, rewritten after every step (``partial`` until it ends)."""

    schema_version: int = SCHEMA_VERSION
    partial: bool = True
    tool: dict
    machine: dict
    target: dict
    workload: dict
    load: dict
    variants: list[str]
    slo: list[SloLimit] = Field(default_factory=list)
    started_at: str
    finished_at: str | None = None
    steps: list[StepResult] = Field(default_factory=list)
    comparisons: list[Comparison] = Field(default_factory=list)
    study: Study | None = None
    max_load: MaxLoad | None = None
    scenario: dict | None = Field(
        None, description="bench --scenario: the phases, arms and their figures."
    )

    @property
    def emulated(self) -> bool:
        return bool(self.target.get("emulated"))

    @property
    def label(self) -> str | None:
        """SIMULATED (no server ran), EMULATED (emulated servers ran) or None (a real target)."""
        if self.target.get("simulated"):
            return "SIMULATED"
        return "EMULATED" if self.emulated else None

    @property
    def open_loop(self) -> bool:
        return self.load.get("mode") == "open"

    @classmethod
    def load_file(cls, path: Path) -> RunResults:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class RequestResult(Model):
    """One request as the client saw it (a row of ``requests.csv``, a line of
    ``requests.jsonl``); ``*_ms`` moments in ms from the step's start, durations named so."""

    step: int
    variant: str
    repeat: int
    users: int | None
    rate: float | None
    index: int
    conversation: int | None = Field(None, description="--turns: the request's conversation.")
    turn: int | None = Field(None, description="--turns: its turn in the conversation, from 0.")
    warmup: bool
    scheduled_ms: float | None
    sent_ms: float | None
    first_byte_ms: float | None = Field(description="When the response headers arrived.")
    first_token_ms: float | None
    last_token_ms: float | None
    end_ms: float | None
    dispatch_lag_ms: float
    inflight_wait_ms: float = Field(description="Open loop: wait for a --max-inflight slot.")
    ttft_ms: float | None
    e2e_ms: float | None
    ttft_from_schedule_ms: float | None
    e2e_from_schedule_ms: float | None
    itl_mean_ms: float | None = Field(description="Mean of this request's gaps between chunks.")
    prompt_tokens: int
    requested_tokens: int
    output_tokens: int
    token_source: str
    chunks: int
    coalesced_chunks: int = Field(description="Chunks read together with the one before.")
    bytes: int = Field(description="Response body bytes received.")
    instance: str | None
    status: int | None
    error: str | None
    error_detail: str
