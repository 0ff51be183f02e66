"""The graph that is traced: a sentence encoder, masked mean pooling, L2 normalisation.

A pair's score is the cosine similarity of its two texts' embeddings (the dot product of
normalised vectors), clipped to 0..1: paraphrases and duplicates of one product land near
1, unrelated texts near 0. Embedding each text on its own lets the left and right texts
of a pair take different length buckets. Works with any BERT-class encoder folder that
transformers loads (the MiniLM sentence encoder here, a fine-tuned one in production).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel


class SentenceEncoder(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)


def load_encoder(model_dir: Path) -> SentenceEncoder:
    # Eager attention traces to plain matrix multiplies, which both torch.jit and
    # neuronx-cc take; the fused kernels do not trace on Neuron.
    encoder = AutoModel.from_pretrained(model_dir, attn_implementation="eager")
    return SentenceEncoder(encoder).eval()


def pair_scores(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of normalised embeddings, clipped to 0..1."""
    return (left * right).sum(dim=-1).clamp(min=0.0, max=1.0)
