"""Timestamped traces: read one to replay it, or make a synthetic one.

A trace is JSON Lines, one request a line: ``timestamp`` (seconds; only differences
count), ``prompt`` (text) or ``prompt_tokens`` (a count), ``output_tokens``, and
optionally ``session_id`` (turns of one conversation, sent with the turns before
them as history) and ``prefix_id`` (requests sharing a system prompt of
``--prefix-tokens`` tokens). Rows are replayed in timestamp order, at real speed or
``--trace-speed`` times faster, each at its own offset whatever the server is doing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from inferfleet.cli.bench.config import (
    MAX_RATE,
    MAX_REQUESTS_PER_STEP,
    MAX_SEED,
    MAX_TOKENS,
    Distribution,
    option,
)
from inferfleet.cli.errors import UserError
from inferfleet.cli.user_files import check_replaceable_file, write_file_atomically

MAX_TRACE_BYTES = 1 << 30
MAX_TRACE_SECONDS = 7 * 86_400.0
ID_LENGTH = 256
# Candidate arrivals drawn at the peak rate before thinning: bounds the generator's memory.
MAX_TRACE_CANDIDATES = 20_000_000
MAKE = "Trace"


@dataclass(slots=True)
class Trace:
    """The rows of a trace file, sorted by timestamp (ties keep the file's order)."""

    offsets: np.ndarray  # seconds from the first timestamp
    prompts: list[str | None]
    prompt_tokens: np.ndarray  # 0 where the row gives a prompt's text
    output_tokens: np.ndarray
    sessions: list[str | None]
    prefixes: list[str | None]
    sha256: str

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def span_s(self) -> float:
        return float(self.offsets[-1]) if len(self) else 0.0

    def previous_turn(self) -> np.ndarray:
        """Row index of the same session's turn before each row (-1: none)."""
        last: dict[str, int] = {}
        previous = np.full(len(self), -1, dtype=np.int64)
        for row, session in enumerate(self.sessions):
            if session is not None:
                previous[row] = last.get(session, -1)
                last[session] = row
        return previous


def load_trace(path: Path) -> Trace:
    """Read and check a trace file; a bad line is named with its number (exit 2)."""
    try:
        size = path.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise UserError(
                f"--trace: {path} is {size / 2**20:,.0f} MiB; bench replays at most "
                f"{MAX_TRACE_BYTES // 2**20} MiB of trace; pass a part of it"
            )
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"--trace: cannot read {path} ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"--trace: {path} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset "
            f"{error.start}); give a JSON Lines file with one request a line"
        ) from None
    times: list[float] = []
    prompts: list[str | None] = []
    counts: list[int] = []
    outputs: list[int] = []
    sessions: list[str | None] = []
    prefixes: list[str | None] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"--trace: {path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{where} is not JSON ({error.msg})") from None
        except RecursionError:
            raise UserError(f"{where} is nested too deeply") from None
        if not isinstance(row, dict):
            raise UserError(f"{where} is not a JSON object; write one request a line")
        if len(times) == MAX_REQUESTS_PER_STEP:
            raise UserError(
                f"{where}: more than {MAX_REQUESTS_PER_STEP:,} requests, what bench keeps in "
                "memory for one step; replay the trace in parts"
            )
        timestamp = row.get("timestamp")
        if (
            isinstance(timestamp, bool)
            or not isinstance(timestamp, int | float)
            or not math.isfinite(timestamp)
        ):
            raise UserError(f"{where}: 'timestamp' must be a number of seconds")
        prompt, tokens = row.get("prompt"), row.get("prompt_tokens")
        if (prompt is None) == (tokens is None):
            raise UserError(f"{where}: give one of 'prompt' (text) or 'prompt_tokens' (a count)")
        if prompt is not None and not isinstance(prompt, str):
            raise UserError(f"{where}: 'prompt' must be a string")
        if tokens is not None and not _token_count(tokens):
            raise UserError(f"{where}: 'prompt_tokens' must be an integer from 1 to {MAX_TOKENS}")
        output = row.get("output_tokens")
        if not _token_count(output):
            raise UserError(f"{where}: 'output_tokens' must be an integer from 1 to {MAX_TOKENS}")
        ids = []
        for field in ("session_id", "prefix_id"):
            value = row.get(field)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, str | int)
                or len(str(value)) > ID_LENGTH
            ):
                raise UserError(
                    f"{where}: '{field}' must be a string or an integer (at most {ID_LENGTH} "
                    "characters)"
                )
            ids.append(None if value is None else str(value))
        times.append(float(timestamp))
        prompts.append(prompt)
        counts.append(tokens or 0)
        outputs.append(output)  # type: ignore[arg-type]
        sessions.append(ids[0])
        prefixes.append(ids[1])
    if not times:
        raise UserError(f"--trace: {path} holds no requests; write one JSON object a line")
    stamps = np.array(times, dtype=float)
    order = np.argsort(stamps, kind="stable")
    offsets = stamps[order] - stamps[order[0]]
    if offsets[-1] > MAX_TRACE_SECONDS:
        raise UserError(
            f"--trace: {path} spans {offsets[-1]:,.0f} s, more than bench replays in one step "
            f"({MAX_TRACE_SECONDS:,.0f} s); replay it in parts"
        )
    picked = order.tolist()
    return Trace(
        offsets=offsets,
        prompts=[prompts[i] for i in picked],
        prompt_tokens=np.array(counts, dtype=np.int64)[order],
        output_tokens=np.array(outputs, dtype=np.int64)[order],
        sessions=[sessions[i] for i in picked],
        prefixes=[prefixes[i] for i in picked],
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _token_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_TOKENS


@dataclass(frozen=True, slots=True)
class TraceArrivals:
    """The trace's offsets, ``speed`` times faster; request ``k`` is the trace's row ``k``."""

    offsets: np.ndarray
    speed: float
    sha256: str
    warmup: float = 0.0

    def __iter__(self) -> Iterator[float]:
        for offset in self.offsets.tolist():
            yield offset / self.speed

    def share(self, first: int, stride: int) -> Iterator[tuple[int, float]]:
        return itertools.islice(enumerate(self), first, None, stride)

    @property
    def expected_count(self) -> float:
        return float(self.offsets.size)

    @property
    def rate(self) -> float:
        """Mean requests per second of the replay."""
        span = float(self.offsets[-1]) / self.speed
        return round(self.offsets.size / span, 6) if span > 0 else float(self.offsets.size)

    def describe(self) -> str:
        return f"trace;sha256={self.sha256};speed={self.speed!r};warmup={self.warmup!r}"


class TraceMakeConfig(BaseModel):
    """``inferfleet bench trace make``: a seeded synthetic trace of production-like traffic."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    out: Path = option(
        Path("trace.jsonl"),
        MAKE,
        "The JSON Lines file to write (it replaces an earlier trace, nothing else).",
    )
    duration: float = option(600.0, MAKE, "Seconds the trace spans.", gt=0, le=MAX_TRACE_SECONDS)
    rate: float = option(2.0, MAKE, "Mean new conversations per second (before bursts).", gt=0,
                         le=MAX_RATE)  # fmt: skip
    diurnal: float = option(
        0.5, MAKE, "Amplitude of the daily swing of the rate: 0 flat, 0.5 from half to 1.5x.",
        ge=0, le=1,
    )  # fmt: skip
    period: float | None = option(
        None, MAKE, "Seconds of one daily cycle (default: the whole --duration).", gt=0,
        le=MAX_TRACE_SECONDS,
    )  # fmt: skip
    bursts: int = option(2, MAKE, "Bursts in the trace, at seeded times.", ge=0, le=1000)
    burst_factor: float = option(4.0, MAKE, "Rate multiplier during a burst.", ge=1, le=100)
    burst_seconds: float = option(10.0, MAKE, "Length of each burst.", gt=0, le=3600)
    session_fraction: float = option(
        0.3, MAKE, "Share of conversations with several turns (a session_id).", ge=0, le=1
    )
    turns: float = option(4.0, MAKE, "Mean turns of a multi-turn conversation.", ge=2, le=100)
    think_time: float = option(5.0, MAKE, "Mean seconds between a turn and the next.", ge=0,
                               le=3600)  # fmt: skip
    prefixes: int = option(4, MAKE, "Distinct shared system prompts (prefix_id).", ge=0,
                           le=10_000)  # fmt: skip
    prefix_fraction: float = option(
        0.5, MAKE, "Share of conversations that start with a shared system prompt.", ge=0, le=1
    )
    prompt_tokens: Distribution = option(
        Distribution(kind="lognormal", params=(256, 0.8)), MAKE,
        "Tokens of each turn's prompt: N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.", cli_type=str,
    )  # fmt: skip
    output_tokens: Distribution = option(
        Distribution(kind="lognormal", params=(128, 0.6)), MAKE,
        "Tokens of each answer: N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.", cli_type=str,
    )  # fmt: skip
    seed: int = option(0, MAKE, "Seed of every draw: the same seed makes the same file.", ge=0,
                       le=MAX_SEED)  # fmt: skip

    @field_validator("prompt_tokens", "output_tokens", mode="before")
    @classmethod
    def _parse_distribution(cls, value: object) -> object:
        return Distribution.parse(value) if isinstance(value, str | int) else value

    @model_validator(mode="after")
    def _bounded(self) -> TraceMakeConfig:
        peak = self.rate * (1 + self.diurnal) * self.burst_factor
        expected = self.rate * self.duration * (1 + self.session_fraction * self.turns)
        if peak * self.duration > MAX_TRACE_CANDIDATES or expected > MAX_REQUESTS_PER_STEP:
            raise ValueError(
                f"duration: {self.rate:g} conversations/s for {self.duration:g} s is more than "
                f"one replay holds ({MAX_REQUESTS_PER_STEP:,} requests); shorten --duration or "
                "lower --rate"
            )
        return self


def make_trace(config: TraceMakeConfig) -> list[dict]:
    """Rows of a synthetic trace, sorted by timestamp; the same config gives the same rows.

    Conversations start as a Poisson process whose rate follows a daily sine and jumps
    by ``burst_factor`` during bursts (drawn by thinning a process at the peak rate).
    A multi-turn conversation sends its later turns after exponential think times.
    """
    rng = np.random.default_rng([config.seed, 7])
    period = config.period or config.duration
    burst_starts = np.sort(rng.uniform(0, config.duration, size=config.bursts))
    peak = config.rate * (1 + config.diurnal) * config.burst_factor
    count = rng.poisson(peak * config.duration)
    starts = np.sort(rng.uniform(0, config.duration, size=count))
    rate = config.rate * (1 - config.diurnal * np.cos(2 * np.pi * starts / period))
    if config.bursts:
        inside = np.searchsorted(burst_starts, starts, side="right") - 1
        since = starts - burst_starts[np.maximum(inside, 0)]
        rate = np.where((inside >= 0) & (since < config.burst_seconds),
                        rate * config.burst_factor, rate)  # fmt: skip
    starts = starts[rng.random(count) < rate / peak]
    rows: list[dict] = []
    for conversation, start in enumerate(starts.tolist()):
        multi = rng.random() < config.session_fraction
        turns = 2 + int(rng.geometric(1 / (config.turns - 1))) - 1 if multi else 1
        prefix = (
            int(rng.integers(config.prefixes))
            if config.prefixes and rng.random() < config.prefix_fraction
            else None
        )
        prompts = config.prompt_tokens.sample(rng, turns).tolist()
        outputs = config.output_tokens.sample(rng, turns).tolist()
        moment = start
        for turn in range(turns):
            if moment >= config.duration:
                break
            row: dict = {"timestamp": round(moment, 6), "prompt_tokens": prompts[turn],
                         "output_tokens": outputs[turn]}  # fmt: skip
            if multi:
                row["session_id"] = f"s{conversation}"
            if prefix is not None:
                row["prefix_id"] = f"p{prefix}"
            rows.append(row)
            moment += float(rng.exponential(config.think_time)) if config.think_time else 0.0
    rows.sort(key=lambda row: row["timestamp"])
    return rows


def write_trace(config: TraceMakeConfig) -> int:
    """Write the trace to ``config.out`` whole or not at all, over nothing but an earlier
    trace; the number of requests written."""
    check_replaceable_file(
        config.out, flag="--out", what="a trace", holds_ours=_starts_a_trace,
        limit=_TRACE_HEAD_BYTES,
    )  # fmt: skip
    rows = make_trace(config)

    def write(staging: Path) -> None:
        with staging.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, separators=(",", ":")) + "\n")

    write_file_atomically(config.out, write, flag="--out")
    return len(rows)


# A trace's first line is a few dozen bytes; reading this much finds it.
_TRACE_HEAD_BYTES = 64 * 1024


def _starts_a_trace(head: bytes) -> bool:
    """The first line is a row of a trace: its timestamp and token counts."""
    first = head.split(b"\n", 1)[0]
    try:
        row = json.loads(first)
    except ValueError:
        return False
    return isinstance(row, dict) and {"timestamp", "output_tokens"} <= row.keys()
