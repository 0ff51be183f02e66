"""Sequence-length buckets: Neuron runs graphs compiled for exact shapes.

Every text of a mini-batch goes to the smallest bucket that holds its tokens (the largest
bucket truncates), and each bucket runs in whole graph batches. Product titles are short,
so most texts take the small, cheap graphs instead of being padded to the longest one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

DEFAULT_BUCKETS = (16, 32, 64, 128)


def parse_buckets(text: str) -> tuple[int, ...]:
    """``"16,32,64"`` as sorted, distinct positive sizes; ValueError says what is wrong."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(
            f"buckets {text!r}: use sizes separated by commas, e.g. 16,32,64"
        ) from None
    if not sizes or sizes[0] < 2:
        raise ValueError(f"buckets {text!r}: give at least one size of 2 tokens or more")
    return tuple(sizes)


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """The smallest of the sorted ``buckets`` holding ``length`` tokens, else the largest."""
    return buckets[min(bisect.bisect_left(buckets, length), len(buckets) - 1)]


@dataclass(frozen=True)
class GraphBatch:
    """Rows of one graph call: ``indices`` into the texts, padded to ``bucket`` tokens."""

    bucket: int
    indices: tuple[int, ...]


def graph_batches(
    lengths: Sequence[int], buckets: Sequence[int], batch_size: int
) -> Iterator[GraphBatch]:
    """Split texts of the given token ``lengths`` into graph calls of at most ``batch_size``."""
    by_bucket: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_bucket.setdefault(bucket_for(length, buckets), []).append(index)
    for bucket in sorted(by_bucket):
        indices = by_bucket[bucket]
        for start in range(0, len(indices), batch_size):
            yield GraphBatch(bucket, tuple(indices[start : start + batch_size]))
