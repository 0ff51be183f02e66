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

from inferfleet.cli.bench.config import MAX_TOKENS, BenchConfig, Distribution
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


@dataclass(frozen=True, slots=True)
class RequestSpec:
    index: int
    prompt: str
    prompt_tokens: int
    output_tokens: int


class Workload:
    """Deterministic request ``i`` for any ``i`` from the seed and the length distributions."""

    def __init__(
        self,
        *,
        seed: int,
        prompt_tokens: Distribution,
        output_tokens: Distribution,
        dataset: list[dict] | None = None,
    ) -> None:
        self.seed = seed
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
                [len(row["prompt"].split()) for row in self._dataset], dtype=np.int64
            )
        else:
            self._prompt_lengths = prompt_tokens.sample(rng, POOL_SIZE)
            self._output = output_tokens.sample(rng, POOL_SIZE)
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
        return cls(
            seed=config.seed,
            prompt_tokens=config.prompt_tokens,
            output_tokens=config.output_tokens,
            dataset=dataset,
        )

    def __len__(self) -> int:
        return len(self._output)

    def spec(self, index: int) -> RequestSpec:
        slot = index % len(self._output)
        output_tokens = int(self._output[slot])
        if self._dataset:
            prompt = self._dataset[slot]["prompt"]
            return RequestSpec(index, prompt, int(self._prompt_lengths[slot]), output_tokens)
        length = int(self._prompt_lengths[slot])
        prompt = self._prompts.get(slot)
        if prompt is None:
            ids = np.random.default_rng([self.seed, 1, slot]).integers(0, len(_WORDS), size=length)
            prompt = " ".join(_WORDS[ids].tolist())
            if self._cached_words + length <= PROMPT_CACHE_WORDS:
                self._prompts[slot] = prompt
                self._cached_words += length
        return RequestSpec(index, prompt, length, output_tokens)

    def describe(self) -> dict:
        return {
            "seed": self.seed,
            "prompt_tokens": str(self.prompt_distribution) if not self._dataset else "dataset",
            "output_tokens": str(self.output_distribution),
            "dataset_sha256": self._dataset_digest,
            "pool_size": len(self),
            "mean_prompt_tokens": float(np.mean(self._prompt_lengths)),
            "mean_output_tokens": float(np.mean(self._output)),
            "prompt_tokens_note": "words of a fixed vocabulary, about one token each",
        }

    def digest(self) -> hashlib._Hash:
        digest = hashlib.sha256()
        digest.update(f"generator={GENERATOR_VERSION};seed={self.seed};".encode())
        digest.update(self._prompt_lengths.tobytes())
        digest.update(self._output.tobytes())
        if self._dataset_digest:
            digest.update(self._dataset_digest.encode())
        return digest


ARRIVAL_CHUNK = 4096


ArrivalKind = Literal["poisson", "constant", "gamma"]
ARRIVAL_KINDS: tuple[str, ...] = ("poisson", "constant", "gamma")


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Send offsets (seconds from the step start) of an arrival process at ``rate`` per second.

    ``poisson``: exponential gaps; ``constant``: every ``1/rate`` s; ``gamma``: gamma gaps of
    shape ``burstiness`` (1 is Poisson, below 1 burstier, above 1 more regular: the gaps'
    coefficient of variation is ``1/sqrt(burstiness)``).

    Either every arrival before ``horizon_s``, or every warm-up arrival (before
    ``warmup``) and then ``measured`` more. Offsets are drawn lazily, a chunk at a
    time, so memory does not grow with the rate or the duration; the same
    parameters always give the same offsets.
    """

    rate: float
    seed: int
    horizon_s: float | None = None
    measured: int | None = None
    warmup: float = 0.0
    kind: ArrivalKind = "poisson"
    burstiness: float = 1.0

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
            return self.rate * self.horizon_s
        assert self.measured is not None
        return self.rate * self.warmup + self.measured

    def describe(self) -> str:
        shape = "" if self.kind == "poisson" else f";burstiness={self.burstiness!r}"
        return (
            f"{self.kind};rate={self.rate!r};seed={self.seed};horizon={self.horizon_s!r};"
            f"measured={self.measured!r};warmup={self.warmup!r}{shape}"
        )


def schedule_hash(workload: Workload, arrivals: Sequence[Arrivals]) -> str:
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
