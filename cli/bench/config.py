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

Api = Literal["openai", "triton", "sagemaker", "classify"]
Routing = Literal["least_outstanding_requests", "random", "round_robin"]
ROUTINGS: tuple[str, ...] = ("least_outstanding_requests", "random", "round_robin")
DEFAULT_DURATION_S = 30.0

# Bounds of every user-given quantity: beyond them a run cannot be measured on one
# client machine (or would exhaust its memory), so they are refused up front.
MAX_TOKENS = 131_072  # a 128k context window
MAX_LOGNORMAL_SIGMA = 4.0
MAX_RATE = 100_000.0  # req/s; one client process tops out near 14k
MAX_USERS = 20_000
MAX_STEP_SECONDS = 86_400.0
MAX_WARMUP_SECONDS = 3_600.0
MAX_TIMEOUT_SECONDS = 3_600.0
# Requests and streamed tokens kept in memory for one step (~2 GB at most).
MAX_REQUESTS_PER_STEP = 2_000_000
MAX_TOKENS_PER_STEP = 250_000_000
MAX_STEPS = 1_000
MAX_SEED = 2**63 - 1


class Distribution(BaseModel):
    """A token-count distribution: ``128``, ``uniform:a:b`` or ``lognormal:median:sigma``."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["fixed", "uniform", "lognormal"]
    params: tuple[float, ...]

    @classmethod
    def parse(cls, text: str | int) -> Distribution:
        spec = str(text).strip()
        parts = spec.split(":")
        try:
            numbers = tuple(float(part) for part in parts[1:]) if len(parts) > 1 else ()
            if len(parts) == 1:
                value = int(parts[0])
                if not 1 <= value <= MAX_TOKENS:
                    raise ValueError
                return cls(kind="fixed", params=(value,))
        except ValueError:
            raise ValueError(_distribution_help(spec)) from None
        kind, shape = parts[0], numbers
        if len(shape) != 2 or not all(math.isfinite(value) for value in shape):
            raise ValueError(_distribution_help(spec))
        if kind == "uniform" and 1 <= shape[0] <= shape[1] <= MAX_TOKENS:
            if not all(value.is_integer() for value in shape):
                raise ValueError(_distribution_help(spec))
            return cls(kind="uniform", params=shape)
        if (
            kind == "lognormal"
            and 1 <= shape[0] <= MAX_TOKENS
            and 0 <= shape[1] <= MAX_LOGNORMAL_SIGMA
        ):
            return cls(kind="lognormal", params=shape)
        raise ValueError(_distribution_help(spec))

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` token counts, each within 1..MAX_TOKENS (a lognormal's tail is clipped)."""
        if self.kind == "fixed":
            return np.full(count, int(self.params[0]), dtype=np.int64)
        if self.kind == "uniform":
            low, high = (int(value) for value in self.params)
            return rng.integers(low, high + 1, size=count, dtype=np.int64)
        median, sigma = self.params
        drawn = np.rint(rng.lognormal(math.log(median), sigma, size=count))
        return np.clip(drawn, 1, MAX_TOKENS).astype(np.int64)

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


def _distribution_help(spec: str) -> str:
    return (
        f"'{spec}' is not a token count or distribution; use an integer from 1 to "
        f"{MAX_TOKENS} (128), uniform:MIN:MAX with integers 1 <= MIN <= MAX <= {MAX_TOKENS}, "
        f"or lognormal:MEDIAN:SIGMA with 1 <= MEDIAN <= {MAX_TOKENS} and "
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
    if not separator or key.strip() != "routing":
        raise ValueError(
            f"'{text}' is not a comparison; use routing=A,B with A and B among "
            + ", ".join(ROUTINGS)
        )
    choices = [value.strip() for value in values.split(",") if value.strip()]
    unknown = [value for value in choices if value not in ROUTINGS]
    if unknown or len(choices) < 2 or len(set(choices)) != len(choices):
        raise ValueError(
            f"'{values}' must list two or more distinct routing policies among "
            + ", ".join(ROUTINGS)
        )
    return tuple(Variant(key="routing", value=value) for value in choices)


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


class BenchConfig(BaseModel):
    """A whole ``inferfleet bench`` run."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    api: Api = "openai"
    target: str | None = Field(None, max_length=2048)
    local: bool = False
    servers: int = Field(5, ge=1, le=64)
    local_mode: Literal["continuous", "static"] = "continuous"
    endpoint: Literal["completions", "chat"] = "completions"
    model: str | None = Field(None, min_length=1, max_length=512)
    target_model: str | None = Field(None, min_length=1, max_length=1024)
    region: str | None = None
    endpoint_url: str | None = Field(None, max_length=2048)

    users: list[int] = Field(default_factory=list)
    rate: list[float] = Field(default_factory=list)
    duration: float | None = Field(None, gt=0, le=MAX_STEP_SECONDS)
    requests: int | None = Field(None, ge=1, le=MAX_REQUESTS_PER_STEP)
    warmup: float = Field(2.0, ge=0, le=MAX_WARMUP_SECONDS)

    prompt_tokens: Distribution = Distribution(kind="fixed", params=(128,))
    output_tokens: Distribution = Distribution(kind="fixed", params=(128,))
    dataset: Path | None = None
    seed: int = Field(0, ge=0, le=MAX_SEED)

    compare: tuple[Variant, ...] = ()
    repeat: int = Field(1, ge=1, le=100)
    target_group_arn: str | None = Field(None, max_length=2048)
    alb_settle: float = Field(10.0, ge=0, le=600)

    out: Path = Path("bench-results")
    price_per_hour: float | None = Field(None, gt=0, le=100_000)
    instances: int | None = Field(None, ge=1, le=100_000)

    workers: int = Field(1, ge=1, le=64)
    timeout: float = Field(300.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    max_inflight: int = Field(4096, ge=1, le=65_536)
    max_loop_lag_ms: float = Field(20.0, gt=0, le=60_000)
    max_dispatch_lag_ms: float = Field(20.0, gt=0, le=60_000)
    max_error_rate: float = Field(0.0, ge=0, le=1)

    _split_users = field_validator("users", mode="before")(_int_list)
    _split_rate = field_validator("rate", mode="before")(_float_list)

    @field_validator("prompt_tokens", "output_tokens", mode="before")
    @classmethod
    def _parse_distribution(cls, value: object) -> object:
        return Distribution.parse(value) if isinstance(value, str | int) else value

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

    @model_validator(mode="after")
    def _coherent(self) -> BenchConfig:
        if not self.users and not self.rate:
            raise ValueError(
                "users: give --users N[,N...] (closed loop) or --rate R[,R...] (open loop)"
            )
        if self.users and self.rate:
            raise ValueError(
                "rate: --users and --rate are exclusive; one run is closed or open loop"
            )
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
        if self.compare and not self.local and not self.target_group_arn:
            raise ValueError(
                "compare: a deployed target needs --target-group-arn so each routing variant can "
                "be set on its ALB target group (or use --local)"
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

    @property
    def open_loop(self) -> bool:
        return bool(self.rate)

    @property
    def loads(self) -> list[float]:
        return list(self.rate) if self.rate else [float(count) for count in self.users]

    @property
    def variants(self) -> tuple[Variant | None, ...]:
        return self.compare or (None,)

    @property
    def instance_count(self) -> int | None:
        return self.instances or (self.servers if self.local else None)


def flag_of(field: str) -> str:
    return "--" + field.replace("_", "-")


def describe_validation_error(error: ValidationError) -> str:
    """One paragraph naming the flag and the fix, from pydantic's first error."""
    first = error.errors()[0]
    location = [str(part) for part in first["loc"] if not str(part).isdigit()]
    message = str(first["msg"]).removeprefix("Value error, ")
    field, colon, rest = message.partition(": ")
    if colon and field in BenchConfig.model_fields:
        return f"{flag_of(field)}: {rest}"
    given = first.get("input")
    if first["type"] != "value_error" and isinstance(given, int | float | str):
        message += f" (got {given!r})"
    if location:
        return f"{flag_of(location[0])}: {message}"
    return message
