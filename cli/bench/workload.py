"""The seeded request schedule: prompt and output lengths, prompts, arrival times.

Every variant of a step replays the same requests in the same order (and, open
loop, at the same offsets), so A/B differences come from the target alone. The
schedule hash lets two runs prove they sent the same thing.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferfleet.cli.bench.config import BenchConfig, Distribution
from inferfleet.cli.errors import UserError

GENERATOR_VERSION = 2
POOL_SIZE = 4096

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
        # Word ids of every pool prompt, drawn at once; the text is joined on first use.
        self._word_ids = np.random.default_rng([seed, 1]).integers(
            0, len(_WORDS), size=int(self._prompt_lengths.sum()) if not dataset else 0
        )
        self._word_offsets = np.concatenate(([0], np.cumsum(self._prompt_lengths)))
        self._prompts: dict[int, str] = {}
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
            ids = self._word_ids[self._word_offsets[slot] : self._word_offsets[slot + 1]]
            prompt = self._prompts[slot] = " ".join(_WORDS[ids].tolist())
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


def poisson_arrivals(
    rate: float, *, seed: int, horizon_s: float | None = None, count: int | None = None
) -> np.ndarray:
    """Send offsets (seconds from the step start) of a Poisson process at ``rate`` per second.

    Either everything before ``horizon_s`` or the first ``count`` arrivals.
    """
    rng = np.random.default_rng([seed, 2, round(rate * 1000)])
    if count is not None:
        return np.cumsum(rng.exponential(1.0 / rate, size=count))
    assert horizon_s is not None
    expected = rate * horizon_s
    chunk = int(expected + 6 * math.sqrt(expected) + 16)
    offsets = np.cumsum(rng.exponential(1.0 / rate, size=chunk))
    while offsets[-1] < horizon_s:
        more = np.cumsum(rng.exponential(1.0 / rate, size=chunk)) + offsets[-1]
        offsets = np.concatenate([offsets, more])
    return offsets[offsets < horizon_s]


def schedule_hash(workload: Workload, arrivals: list[np.ndarray]) -> str:
    digest = workload.digest()
    for offsets in arrivals:
        digest.update(np.round(offsets, 9).tobytes())
    return digest.hexdigest()


def load_dataset(path: Path) -> list[dict]:
    rows: list[dict] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise UserError(
                    f"--dataset: {path} line {number} is not JSON ({error.msg})"
                ) from None
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise UserError(
                    f"--dataset: {path} line {number} needs a string field 'prompt' "
                    "(and optionally an integer 'output_tokens')"
                )
            tokens = row.get("output_tokens")
            if tokens is not None and (not isinstance(tokens, int) or tokens < 1):
                raise UserError(
                    f"--dataset: {path} line {number}: 'output_tokens' must be a positive integer"
                )
            rows.append({key: row[key] for key in ("prompt", "output_tokens") if key in row})
    if not rows:
        raise UserError(f"--dataset: {path} holds no prompts; write one JSON object a line")
    return rows
