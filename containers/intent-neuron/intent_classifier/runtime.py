"""Load the traced graphs and classify batches of queries.

On Neuron each graph is wrapped in ``torch_neuronx.DataParallel``: one copy of
the model per visible NeuronCore (``NEURON_RT_VISIBLE_CORES``), each batch
split across them. On CPU a batch runs through the graphs of the largest
traced batch sizes that fit it, the remainder padded up to the smallest that
holds it.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer

from intent_classifier.buckets import encode_into_bucket
from intent_classifier.compile import MANIFEST, graph_file

Graph = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: list[float]


class IntentRuntime:
    def __init__(self, compiled_dir: Path) -> None:
        manifest = json.loads((compiled_dir / MANIFEST).read_text())
        self.labels: list[str] = manifest["labels"]
        self.buckets: list[int] = manifest["buckets"]
        self.batch_sizes: list[int] = manifest["batch_sizes"]
        self.target: str = manifest["target"]
        self._tokenizer = AutoTokenizer.from_pretrained(compiled_dir)
        self._graphs = {
            (bucket, batch_size): self._load(compiled_dir / graph_file(bucket, batch_size))
            for bucket in self.buckets
            for batch_size in self.batch_sizes
        }

    def _load(self, path: Path) -> Graph:
        graph = torch.jit.load(path)
        if self.target == "neuron":
            import torch_neuronx

            return torch_neuronx.DataParallel(graph)
        return graph

    def chunk_sizes(self, rows: int) -> list[tuple[int, int]]:
        """``(rows taken, traced batch size)`` per graph call, covering ``rows`` in order."""
        if self.target == "neuron":
            # DataParallel splits any batch across the cores itself.
            return [(rows, self.batch_sizes[0])]
        chunks, remaining = [], rows
        while remaining:
            fitting = [size for size in self.batch_sizes if size <= remaining]
            size = max(fitting) if fitting else min(self.batch_sizes)
            taken = min(size, remaining)
            chunks.append((taken, size))
            remaining -= taken
        return chunks

    @torch.inference_mode()
    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        input_ids, attention_mask = encode_into_bucket(self._tokenizer, texts, self.buckets)
        bucket = input_ids.shape[1]
        outputs, start = [], 0
        for taken, size in self.chunk_sizes(input_ids.shape[0]):
            ids, mask = input_ids[start : start + taken], attention_mask[start : start + taken]
            padding = -taken % size
            if padding:
                # Traced graphs take whole batches; pad with copies of the last row.
                ids = torch.cat([ids, ids[-1:].expand(padding, -1)])
                mask = torch.cat([mask, mask[-1:].expand(padding, -1)])
            outputs.append(self._graphs[(bucket, size)](ids, mask)[:taken])
            start += taken
        scores = torch.cat(outputs).float().softmax(dim=-1)
        return [
            Prediction(label=self.labels[int(row.argmax())], scores=row.tolist()) for row in scores
        ]
