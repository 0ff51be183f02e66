"""Fixed sequence-length buckets: Neuron runs graphs compiled for exact shapes.

A query pads to the smallest bucket that holds it; short queries (the common
case for search intent) get the small, fast graph.
"""

from collections.abc import Sequence

import torch

DEFAULT_BUCKETS = (16, 32, 64, 128)


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket holding ``length`` tokens; the largest one truncates longer input."""
    for bucket in sorted(buckets):
        if length <= bucket:
            return bucket
    return max(buckets)


def encode_into_bucket(
    tokenizer, texts: Sequence[str], buckets: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask for ``texts``, padded to one shared bucket."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max(buckets))
    bucket = bucket_for(max(len(ids) for ids in encoded.input_ids), buckets)
    padded = tokenizer.pad(encoded, padding="max_length", max_length=bucket, return_tensors="pt")
    return padded.input_ids, padded.attention_mask
