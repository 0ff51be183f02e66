"""The classifier: encoder, masked mean pooling, linear head."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

HEAD_FILE = "intent_head.safetensors"
LABELS_FILE = "intent_labels.json"


class IntentClassifier(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, head: torch.nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


def load_classifier(model_dir: Path) -> tuple[IntentClassifier, list[str]]:
    """Encoder weights, trained head and label names from one folder."""
    labels = json.loads((model_dir / LABELS_FILE).read_text())
    encoder = AutoModel.from_pretrained(model_dir, attn_implementation="eager")
    head = torch.nn.Linear(encoder.config.hidden_size, len(labels))
    head.load_state_dict(load_file(model_dir / HEAD_FILE))
    return IntentClassifier(encoder, head).eval(), labels


def write_head(model_dir: Path, labels: list[str], hidden_size: int, seed: int = 0) -> None:
    """Give an encoder folder an untrained head, for wiring and latency work before training."""
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(hidden_size, len(labels))
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.02)
        head.bias.zero_()
    save_file(head.state_dict(), model_dir / HEAD_FILE)
    (model_dir / LABELS_FILE).write_text(json.dumps(labels))
