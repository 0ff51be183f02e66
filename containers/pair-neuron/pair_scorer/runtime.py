"""Load the traced graphs of one model copy and score pairs with them.

Each text is tokenised once, put in its length bucket and run in whole graph batches (the
last batch of a bucket padded with copies of its last row); a pair's score is the cosine
of its two embeddings. On Neuron the process loading this runtime sees exactly one
NeuronCore (``NEURON_RT_VISIBLE_CORES``), so the copy lives on that core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer

from pair_scorer.buckets import GraphBatch, graph_batches
from pair_scorer.compile import MANIFEST, example_inputs, graph_file
from pair_scorer.encoder import pair_scores

Graph = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PairRuntime:
    def __init__(self, traced_dir: Path) -> None:
        manifest = json.loads((traced_dir / MANIFEST).read_text())
        self.target: str = manifest["target"]
        self.buckets: tuple[int, ...] = tuple(manifest["buckets"])
        self.batch_size: int = manifest["batch_size"]
        if self.target == "neuron":
            import torch_neuronx  # noqa: F401 - registers the Neuron ops the graphs hold
        self._tokenizer = AutoTokenizer.from_pretrained(traced_dir)
        self._graphs: dict[int, Graph] = {
            bucket: torch.jit.load(traced_dir / graph_file(bucket)) for bucket in self.buckets
        }

    @torch.inference_mode()
    def warm_up(self) -> None:
        """Run every graph once before the first mini-batch: the Neuron runtime loads a graph
        onto its core on the first call, TorchScript profiles it."""
        for bucket, graph in self._graphs.items():
            graph(*example_inputs(bucket, self.batch_size))

    def graph_inputs(
        self, texts: Sequence[str]
    ) -> Iterator[tuple[GraphBatch, torch.Tensor, torch.Tensor]]:
        """Token ids and masks of each graph call: the host's share of the work."""
        token_ids = self._tokenizer(
            list(texts), truncation=True, max_length=self.buckets[-1]
        ).input_ids
        pad = self._tokenizer.pad_token_id or 0
        for batch in graph_batches([len(ids) for ids in token_ids], self.buckets, self.batch_size):
            rows = [token_ids[index] for index in batch.indices]
            rows += [rows[-1]] * (self.batch_size - len(rows))
            ids = torch.full((self.batch_size, batch.bucket), pad, dtype=torch.long)
            mask = torch.zeros((self.batch_size, batch.bucket), dtype=torch.long)
            for row, tokens in enumerate(rows):
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
            yield batch, ids, mask

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        embeddings: torch.Tensor | None = None
        for batch, ids, mask in self.graph_inputs(texts):
            output = self._graphs[batch.bucket](ids, mask)[: len(batch.indices)].float()
            if embeddings is None:
                embeddings = torch.empty((len(texts), output.shape[-1]))
            embeddings[list(batch.indices)] = output
        return embeddings if embeddings is not None else torch.empty((0, 0))

    def score(self, lefts: Sequence[str], rights: Sequence[str]) -> list[float]:
        """One score in 0..1 per pair ``(lefts[i], rights[i])``."""
        if len(lefts) != len(rights):
            raise ValueError(f"{len(lefts)} left texts for {len(rights)} right texts")
        if not lefts:
            return []
        embeddings = self.embed([*lefts, *rights])
        return pair_scores(embeddings[: len(lefts)], embeddings[len(lefts) :]).tolist()
