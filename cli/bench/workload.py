"""The seeded request schedule: prompt and output lengths, prompts, arrival times.

Every variant of a step replays the same requests in the same order (and, open
loop, at the same offsets), so A/B differences come from the target alone. The
schedule hash lets two runs prove they sent the same thing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from inferfleet.cli.bench.config import (
    MAX_TOKENS,
    MAX_TURNS,
    SINGLE_TURN,
    BenchConfig,
    Distribution,
)
from inferfleet.cli.bench.tokenizer import PromptTokenizer
from inferfleet.cli.bench.trace import Trace, TraceArrivals, load_trace
from inferfleet.cli.errors import UserError

GENERATOR_VERSION = 3
POOL_SIZE = 4096
MAX_DATASET_BYTES = 1 << 30
# Prompt text kept joined for reuse; longer pools rebuild a prompt on each use.
PROMPT_CACHE_WORDS = 8_000_000

# Common English words that most LLM tokenizers encode as one token each (with
# the leading space), so a prompt of N words is close to N prompt tokens.
_VOCABULARY = (
    "the of and to in is was for that on with as by at from his her they this have not are "
    "but had one all were when there can more time some out would what about into only other "
    "new which their like over also after first two may could these people well made any part "
    "most then than many such state way work years back good great under just high water long "
    "little very through where before world day life same city house small place home found "
    "right still old school while name both light never last each power family down side "
    "order point hand group"
)
_WORDS = np.array(_VOCABULARY.split())
# Seed streams of the texts drawn besides prompts (1 is the prompts', 2 the arrivals',
# 3 which slots share the prefix, 4 the turns of conversations).
_STREAMS = {"prefix": 5, "reply": 6}
_TURNS_STREAM = 4


def _word_count(text: str) -> int:
    return len(text.split())


def _tile(turns: np.ndarray, size: int) -> np.ndarray:
    """The leading ``turns`` that sum to ``size``, the last one cut to fit."""
    ends = np.cumsum(turns)
    count = int(np.searchsorted(ends, size)) + 1
    tiled = turns[:count].copy()
    tiled[-1] -= int(ends[count - 1]) - size
    return tiled


def _id_number(name: int | str) -> int:
    """A prefix id or row as a seed word, the same in every process (unlike ``hash``)."""
    if isinstance(name, int):
        return name
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request: ``prompt`` is the whole text a completion API sends; a chat API sends
    ``messages`` ((role, content): shared system prompt, earlier turns, this turn) when
    there are any, else one user turn of ``prompt``."""

    index: int
    prompt: str
    prompt_tokens: int
    output_tokens: int
    messages: tuple[tuple[str, str], ...] = ()

    def chat_messages(self) -> list[dict[str, str]]:
        """The ``messages`` of a chat request (one user turn when there is no history)."""
        pairs = self.messages or (("user", self.prompt),)
        return [{"role": role, "content": content} for role, content in pairs]


class Workload:
    """Deterministic request ``i`` for any ``i`` from the seed and the length distributions.

    Requests are grouped into conversations (``turns``): a closed-loop user takes
    conversation ``c`` and sends the requests of :meth:`conversation` in order, each turn
    carrying the turns before it and their answers as history. One turn each (the
    default) makes every request its own conversation. A trace's sessions are its
    conversations, linked by ``session_id`` instead.
    """

    def __init__(
        self,
        *,
        seed: int,
        prompt_tokens: Distribution,
        output_tokens: Distribution,
        dataset: list[dict] | None = None,
        trace: Trace | None = None,
        prefix_tokens: int = 0,
        prefix_fraction: float = 1.0,
        tokenizer: PromptTokenizer | None = None,
        turns: Distribution | None = None,
        think_time_s: float = 0.0,
    ) -> None:
        self.seed = seed
        self.trace = trace
        self.tokenizer = tokenizer
        count = tokenizer.count if tokenizer else _word_count
        self.prefix_tokens, self.prefix_fraction = prefix_tokens, prefix_fraction
        self.prompt_distribution = prompt_tokens
        self.output_distribution = output_tokens
        rng = np.random.default_rng([seed, 0])
        self._dataset = dataset
        if dataset:
            order = rng.permutation(len(dataset))
            self._dataset = [dataset[i] for i in order]
            size = len(self._dataset)
            drawn = output_tokens.sample(rng, size)
            self._output = np.array(
                [
                    row.get("output_tokens", fallback)
                    for row, fallback in zip(self._dataset, drawn, strict=True)
                ],
                dtype=np.int64,
            )
            self._prompt_lengths = np.array(
                [count(row["prompt"]) for row in self._dataset], dtype=np.int64
            )
        elif trace is not None:
            self._prompt_lengths = np.where(
                trace.prompt_tokens > 0,
                trace.prompt_tokens,
                [count(text) if text else 0 for text in trace.prompts],
            ).astype(np.int64)
            self._output = trace.output_tokens
        else:
            self._prompt_lengths = prompt_tokens.sample(rng, POOL_SIZE)
            self._output = output_tokens.sample(rng, POOL_SIZE)
        multi = trace is None and turns is not None and str(turns) != SINGLE_TURN
        self.turns = turns if multi else None
        # A closed-loop user's pause between an answer and its conversation's next turn.
        self.think_time_s = think_time_s if multi else 0.0
        # Conversations tile the pool (the last one cut to fit), so request i's history
        # depends on i modulo the pool only, like everything else about it.
        self.conversation_turns = (
            _tile(turns.sample(np.random.default_rng([seed, _TURNS_STREAM]), len(self._output),
                               maximum=MAX_TURNS), len(self._output))
            if self.turns is not None
            else np.ones(len(self._output), dtype=np.int64)
        )  # fmt: skip
        self._conversation_starts = np.cumsum(self.conversation_turns) - self.conversation_turns
        # The same conversation's turn before each slot (-1: its first turn); None: none has.
        self._previous_turn: np.ndarray | None = None
        if trace is not None:
            self._previous_turn = trace.previous_turn()
        elif self.turns is not None:
            self._previous_turn = np.arange(len(self._output)) - 1
            self._previous_turn[self._conversation_starts] = -1
        # Which pool slots carry the shared prefix (without a trace, one prefix for all); a
        # conversation keeps the choice of its first turn.
        self._shared = (
            np.random.default_rng([seed, 3]).random(len(self._output)) < prefix_fraction
            if prefix_tokens and trace is None
            else None
        )
        if self._shared is not None and self.turns is not None:
            self._shared = np.repeat(self._shared[self._conversation_starts],
                                     self.conversation_turns)  # fmt: skip
        # Prompt text is drawn per slot on first use, so memory follows what is sent;
        # joined prompts are kept up to a word budget.
        self._prompts: dict[int, str] = {}
        self._cached_words = 0
        self._dataset_digest = (
            hashlib.sha256(json.dumps(self._dataset, sort_keys=True).encode()).hexdigest()
            if self._dataset
            else None
        )

    @classmethod
    def from_config(cls, config: BenchConfig) -> Workload:
        dataset = load_dataset(config.dataset) if config.dataset else None
        trace = load_trace(config.trace) if config.trace else None
        tokenizer = PromptTokenizer(config.tokenizer) if config.tokenizer else None
        if trace is not None and not config.prefix_tokens and any(trace.prefixes):
            raise UserError(
                f"--prefix-tokens: {config.trace} names shared prefixes (prefix_id); give "
                "their length, e.g. --prefix-tokens 512"
            )
        return cls(
            seed=config.seed,
            prompt_tokens=config.prompt_tokens,
            output_tokens=config.output_tokens,
            dataset=dataset,
            trace=trace,
            prefix_tokens=config.prefix_tokens,
            prefix_fraction=config.prefix_fraction,
            tokenizer=tokenizer,
            turns=config.turns,
            think_time_s=config.think_time,
        )

    def __len__(self) -> int:
        return len(self._output)

    def spec(self, index: int) -> RequestSpec:
        """Request ``index``: its own prompt, after its shared prefix and its conversation's
        earlier turns (the oldest fall out when the context window would overflow)."""
        slot = index % len(self._output)
        output_tokens = int(self._output[slot])
        user = self._turn_prompt(slot)
        earlier, total = self._history(slot)
        messages: list[tuple[str, str]] = []
        prefix_id = self._prefix_of(slot)
        if prefix_id is not None:
            messages.append(("system", self._text(("prefix", prefix_id), self.prefix_tokens)))
        for turn in reversed(earlier):
            messages.append(("user", self._turn_prompt(turn)))
            # The answer a turn is assumed to have had: its requested length of words, the
            # same on every run (the server's actual text is not kept), so every variant and
            # the simulator see the same history.
            messages.append(("assistant", self._text(("reply", turn), int(self._output[turn]))))
        if not messages:
            return RequestSpec(index, user, total, output_tokens)
        messages.append(("user", user))
        prompt = "\n\n".join(content for _, content in messages)
        return RequestSpec(index, prompt, total, output_tokens, tuple(messages))

    def sizes(self, index: int) -> tuple[int, int]:
        """Prompt tokens (prefix and history included) and output tokens of request
        ``index``, without building its text."""
        slot = index % len(self._output)
        return self._history(slot)[1], int(self._output[slot])

    def _history(self, slot: int) -> tuple[list[int], int]:
        """The earlier turns ``slot`` carries (newest first) and its prompt tokens in all."""
        total = int(self._prompt_lengths[slot])
        if self._prefix_of(slot) is not None:
            total += self.prefix_tokens
        earlier = []
        previous = self._previous_turn
        turn = -1 if previous is None else int(previous[slot])
        while turn >= 0:
            cost = int(self._prompt_lengths[turn]) + int(self._output[turn])
            if total + cost > MAX_TOKENS:
                break  # the oldest turns fall out of the context window
            earlier.append(turn)
            total += cost
            turn = int(previous[turn])  # type: ignore[index]
        return earlier, total

    def conversation(self, number: int) -> range:
        """Request indices of conversation ``number``, in turn order."""
        cycle, local = divmod(number, len(self.conversation_turns))
        start = cycle * len(self._output) + int(self._conversation_starts[local])
        return range(start, start + int(self.conversation_turns[local]))

    @property
    def multi_turn(self) -> bool:
        return self.turns is not None

    def prepare(self, count: int) -> None:
        """Build the first ``count`` requests now: a tokenizer's fitting stays out of the
        dispatch loop of an open-loop step."""
        for index in range(min(count, len(self))):
            if self._cached_words >= PROMPT_CACHE_WORDS:
                return  # past the budget prompts are rebuilt on use anyway
            self.spec(index)

    def _text(self, key: tuple[str, int | str], length: int) -> str:
        """``length`` vocabulary words drawn from the seed and ``key`` (with a tokenizer, exactly
        ``length`` of its tokens); kept up to a word budget."""
        text = self._prompts.get(key)  # type: ignore[call-overload]
        if text is None:
            kind, name = key
            stream = [self.seed, 1, name] if kind == "prompt" else [self.seed, _STREAMS[kind],
                                                                     _id_number(name)]  # fmt: skip
            rng = np.random.default_rng(stream)

            def words(count: int) -> list[str]:
                return _WORDS[rng.integers(0, len(_WORDS), size=count)].tolist()

            drawn = words(length)
            text = self.tokenizer.fit(drawn, length, words) if self.tokenizer else " ".join(drawn)
            if self._cached_words + length <= PROMPT_CACHE_WORDS:
                self._prompts[key] = text  # type: ignore[index]
                self._cached_words += length
        return text

    def _turn_prompt(self, slot: int) -> str:
        """The new text of request ``slot``: the trace's or dataset's, or drawn words."""
        if self.trace is not None and self.trace.prompts[slot] is not None:
            return self.trace.prompts[slot]  # type: ignore[return-value]
        if self._dataset:
            return self._dataset[slot]["prompt"]
        return self._text(("prompt", slot), int(self._prompt_lengths[slot]))

    def _prefix_of(self, slot: int) -> str | None:
        if self.trace is not None:
            return self.trace.prefixes[slot]
        return "shared" if self._shared is not None and self._shared[slot] else None

    def describe(self) -> dict:
        trace = self.trace
        return {
            "seed": self.seed,
            "prompt_tokens": "trace"
            if trace
            else "dataset"
            if self._dataset
            else str(self.prompt_distribution),
            "output_tokens": "trace" if trace else str(self.output_distribution),
            "dataset_sha256": self._dataset_digest,
            "trace_sha256": trace.sha256 if trace else None,
            "trace_sessions": len({s for s in trace.sessions if s is not None}) if trace else None,
            "prefix_tokens": self.prefix_tokens or None,
            "prefix_fraction": self.prefix_fraction if self._shared is not None else None,
            "pool_size": len(self),
            "mean_prompt_tokens": float(np.mean(self._prompt_lengths)),
            "mean_output_tokens": float(np.mean(self._output)),
            "prompt_tokens_note": (
                f"exact, counted by the tokenizer {self.tokenizer.describe()}"
                if self.tokenizer
                else "words of a fixed vocabulary, about one token each"
            ),
            "tokenizer": self.tokenizer.describe() if self.tokenizer else None,
            **self._describe_turns(),
        }

    def _describe_turns(self) -> dict:
        if self.turns is None:
            return {"turns": None}
        context = [self.sizes(slot)[0] for slot in range(len(self))]
        return {
            "turns": str(self.turns),
            "think_time_s": self.think_time_s,
            "conversations": len(self.conversation_turns),
            "mean_turns": float(np.mean(self.conversation_turns)),
            # What a turn sends in all: its new text plus the history before it.
            "mean_context_tokens": float(np.mean(context)),
            "turns_note": "turn k sends turns 1..k-1 and the answers they asked for "
            "(--output-tokens words each), then its own --prompt-tokens",
        }

    def digest(self) -> hashlib._Hash:
        digest = hashlib.sha256()
        digest.update(f"generator={GENERATOR_VERSION};seed={self.seed};".encode())
        digest.update(self._prompt_lengths.tobytes())
        digest.update(self._output.tobytes())
        if self._dataset_digest:
            digest.update(self._dataset_digest.encode())
        if self.trace is not None:
            digest.update(f"trace={self.trace.sha256};".encode())
        if self.tokenizer is not None:
            digest.update(f"tokenizer={self.tokenizer.describe()};".encode())
        if self.prefix_tokens:
            digest.update(f"prefix={self.prefix_tokens};{self.prefix_fraction!r};".encode())
        if self.turns is not None:
            digest.update(f"turns={self.turns};think={self.think_time_s!r};".encode())
            digest.update(self.conversation_turns.tobytes())
        return digest


ARRIVAL_CHUNK = 4096


ArrivalKind = Literal["poisson", "constant", "gamma"]
ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "constant", "gamma")
ScheduleShape = Literal["ramp", "step"]


@dataclass(frozen=True, slots=True)
class RateSchedule:
    """A request rate that changes over time: ``points`` of (seconds, requests/s), ascending
    in time, joined by straight lines (``ramp``) or each held until the next (``step``).
    The first rate holds before the first point and the last after the last.

    An arrival process follows it by running on the schedule's clock: arrivals drawn at
    rate 1 on the clock of expected arrivals (:meth:`cumulative`) are mapped back to
    seconds with :meth:`inverse`, which keeps the process's shape (Poisson stays
    Poisson, constant gaps stay even in expected arrivals).
    """

    points: tuple[tuple[float, float], ...]
    shape: ScheduleShape = "ramp"

    def __post_init__(self) -> None:
        times = [t for t, _ in self.points]
        if not self.points or times != sorted(times) or len(set(times)) != len(times):
            raise ValueError("a rate schedule needs points in strictly ascending time")
        if any(rate < 0 for _, rate in self.points) or not any(r for _, r in self.points):
            raise ValueError("a rate schedule's rates are 0 or more, and one is above 0")

    def delayed(self, seconds: float) -> RateSchedule:
        return RateSchedule(tuple((t + seconds, r) for t, r in self.points), self.shape)

    def scaled(self, factor: float) -> RateSchedule:
        return RateSchedule(tuple((t, r * factor) for t, r in self.points), self.shape)

    def _knots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Segment starts, their start rates, slopes (0 for a step) and expected arrivals
        before each; the first segment starts at 0, the last never ends."""
        times = np.array([t for t, _ in self.points], dtype=float)
        rates = np.array([r for _, r in self.points], dtype=float)
        if times[0] > 0:
            times, rates = np.concatenate(([0.0], times)), np.concatenate(([rates[0]], rates))
        lengths = np.diff(times)
        slopes = np.zeros_like(rates)
        if self.shape == "ramp":
            slopes[:-1] = np.diff(rates) / lengths
        areas = rates[:-1] * lengths + slopes[:-1] * lengths**2 / 2
        before = np.concatenate(([0.0], np.cumsum(areas)))
        return times, rates, slopes, before

    def rate_at(self, seconds: float) -> float:
        times, rates, slopes, _ = self._knots()
        segment = max(0, int(np.searchsorted(times, seconds, side="right")) - 1)
        return float(rates[segment] + slopes[segment] * (seconds - times[segment]))

    def cumulative(self, seconds: float) -> float:
        """Expected arrivals from 0 to ``seconds``."""
        times, rates, slopes, before = self._knots()
        segment = max(0, int(np.searchsorted(times, seconds, side="right")) - 1)
        span = seconds - times[segment]
        return float(before[segment] + rates[segment] * span + slopes[segment] * span**2 / 2)

    def inverse(self, expected: np.ndarray) -> np.ndarray:
        """The moments by which ``expected`` arrivals are due (inf past a final rate of 0)."""
        times, rates, slopes, before = self._knots()
        segment = np.maximum(np.searchsorted(before, expected, side="right") - 1, 0)
        left = expected - before[segment]
        start, slope = rates[segment], slopes[segment]
        # Solves start * s + slope * s**2 / 2 = left in the form that stays exact as the
        # slope goes to 0 (a step, or a flat ramp).
        with np.errstate(divide="ignore", invalid="ignore"):
            span = 2 * left / (start + np.sqrt(start**2 + 2 * slope * left))
        return np.where(np.isfinite(span), times[segment] + span, np.inf)

    def describe(self) -> str:
        return f"{self.shape}:" + ",".join(f"{t!r}={r!r}" for t, r in self.points)


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Send offsets (seconds from the step start) of an arrival process at ``rate`` per second.

    ``poisson``: exponential gaps; ``constant``: every ``1/rate`` s; ``gamma``: gamma gaps of
    shape ``burstiness`` (1 is Poisson, below 1 burstier, above 1 more regular: the gaps'
    coefficient of variation is ``1/sqrt(burstiness)``).

    With a ``schedule`` the rate is ``rate`` times the schedule's at each moment (a
    daily curve, a ramp). Either every arrival before ``horizon_s``, or every warm-up
    arrival (before ``warmup``) and then ``measured`` more. Offsets are drawn lazily, a
    chunk at a time, so memory does not grow with the rate or the duration; the same
    parameters always give the same offsets.
    """

    rate: float
    seed: int
    horizon_s: float | None = None
    measured: int | None = None
    warmup: float = 0.0
    kind: ArrivalKind = "poisson"
    burstiness: float = 1.0
    schedule: RateSchedule | None = None

    def gaps(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.kind == "constant":
            return np.full(size, 1.0 / self.rate)
        if self.kind == "gamma":
            return rng.gamma(self.burstiness, 1.0 / (self.rate * self.burstiness), size=size)
        return rng.exponential(1.0 / self.rate, size=size)

    def __iter__(self) -> Iterator[float]:
        rng = np.random.default_rng([self.seed, 2, round(self.rate * 1000)])
        last, measured = 0.0, 0
        while True:
            offsets = np.cumsum(self.gaps(rng, ARRIVAL_CHUNK)) + last
            last = float(offsets[-1])
            if self.schedule is not None:
                offsets = self.schedule.inverse(offsets)
            for offset in offsets.tolist():
                if self.horizon_s is not None and offset >= self.horizon_s:
                    return
                if self.measured is not None and offset >= self.warmup:
                    if measured == self.measured:
                        return
                    measured += 1
                yield offset

    def share(self, first: int, stride: int) -> Iterator[tuple[int, float]]:
        """``(index, offset)`` of arrivals ``first``, ``first + stride``, ...: one worker's part."""
        return itertools.islice(enumerate(self), first, None, stride)

    @property
    def expected_count(self) -> float:
        if self.horizon_s is not None:
            return self.rate * self._elapsed(self.horizon_s)
        assert self.measured is not None
        return self.rate * self._elapsed(self.warmup) + self.measured

    def _elapsed(self, seconds: float) -> float:
        """Seconds at rate 1 that ``seconds`` of the schedule are worth."""
        return self.schedule.cumulative(seconds) if self.schedule is not None else seconds

    def describe(self) -> str:
        shape = "" if self.kind == "poisson" else f";burstiness={self.burstiness!r}"
        schedule = "" if self.schedule is None else f";schedule={self.schedule.describe()}"
        return (
            f"{self.kind};rate={self.rate!r};seed={self.seed};horizon={self.horizon_s!r};"
            f"measured={self.measured!r};warmup={self.warmup!r}{shape}{schedule}"
        )


def schedule_hash(workload: Workload, arrivals: Sequence[Arrivals | TraceArrivals]) -> str:
    """Proves two runs sent the same requests: the pool, and each arrival process."""
    digest = workload.digest()
    for process in arrivals:
        digest.update(process.describe().encode())
    return digest.hexdigest()


def load_dataset(path: Path) -> list[dict]:
    """Rows of a JSON Lines file: a string ``prompt`` and optionally ``output_tokens``."""
    try:
        size = path.stat().st_size
        if size > MAX_DATASET_BYTES:
            raise UserError(
                f"--dataset: {path} is {size / 2**20:,.0f} MiB; bench reads at most "
                f"{MAX_DATASET_BYTES // 2**20} MiB of prompts; pass a sample of the file"
            )
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(f"--dataset: cannot read {path} ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"--dataset: {path} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset "
            f'{error.start}); give a JSON Lines file with one {{"prompt": ...}} object a line'
        ) from None
    rows: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"--dataset: {path} line {number} is not JSON ({error.msg})") from None
        except RecursionError:
            raise UserError(f"--dataset: {path} line {number} is nested too deeply") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise UserError(
                f"--dataset: {path} line {number} needs a string field 'prompt' "
                "(and optionally an integer 'output_tokens')"
            )
        tokens = row.get("output_tokens")
        if tokens is not None and (
            isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS
        ):
            raise UserError(
                f"--dataset: {path} line {number}: 'output_tokens' must be an integer from 1 "
                f"to {MAX_TOKENS}"
            )
        rows.append({key: row[key] for key in ("prompt", "output_tokens") if key in row})
    if not rows:
        raise UserError(f"--dataset: {path} holds no prompts; write one JSON object a line")
    return rows
