"""Load the traced graphs and classify batches of queries.

On Neuron each graph is wrapped in ``torch_neuronx.DataParallel``: one copy of
the model per visible NeuronCore (``NEURON_RT_VISIBLE_CORES``), each batch
split across them.
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
        self.batch_size: int = manifest["batch_size"]
        self.target: str = manifest["target"]
        self._tokenizer = AutoTokenizer.from_pretrained(compiled_dir)
        self._graphs = {
            bucket: self._load(compiled_dir / graph_file(bucket, self.batch_size))
            for bucket in self.buckets
        }

    def _load(self, path: Path) -> Graph:
        graph = torch.jit.load(path)
        if self.target == "neuron":
            import torch_neuronx

            return torch_neuronx.DataParallel(graph)
        return graph

    @torch.inference_mode()
    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        input_ids, attention_mask = encode_into_bucket(self._tokenizer, texts, self.buckets)
        rows = input_ids.shape[0]
        # Graphs take whole multiples of the traced batch; pad with copies of the last row.
        padding = -rows % self.batch_size
        if padding:
            input_ids = torch.cat([input_ids, input_ids[-1:].expand(padding, -1)])
            attention_mask = torch.cat([attention_mask, attention_mask[-1:].expand(padding, -1)])
        graph = self._graphs[input_ids.shape[1]]
        if self.target == "neuron":
            # DataParallel splits the batch across the cores itself.
            logits = graph(input_ids, attention_mask)
        else:
            chunks = zip(
                input_ids.split(self.batch_size), attention_mask.split(self.batch_size), strict=True
            )
            logits = torch.cat([graph(ids, mask) for ids, mask in chunks])
        logits = logits[:rows]
        scores = logits.float().softmax(dim=-1)
        return [
            Prediction(label=self.labels[int(row.argmax())], scores=row.tolist()) for row in scores
        ]
