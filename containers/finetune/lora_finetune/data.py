"""JSON Lines training data: ``{"prompt": ..., "completion": ...}`` or ``{"text": ...}`` a line.

Loss counts completion tokens only when a prompt is given, so the adapter
learns to answer rather than to repeat questions.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

IGNORED = -100


class DataError(ValueError):
    """The user's data cannot be trained on; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str


def read_examples(folder: Path) -> list[Example]:
    files = sorted(path for path in folder.rglob("*") if path.suffix == ".jsonl")
    if not files:
        raise DataError(f"no .jsonl files under {folder}")
    examples = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise DataError(f"{path.name}:{number}: not JSON ({error})") from None
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                examples.append(Example(prompt="", completion=record["text"]))
            elif isinstance(record, dict) and isinstance(record.get("completion"), str):
                examples.append(Example(str(record.get("prompt", "")), record["completion"]))
            else:
                raise DataError(f"{path.name}:{number}: needs 'text' or 'completion' (a string)")
    if not examples:
        raise DataError(f"the .jsonl files under {folder} hold no examples")
    return examples


def tokenize(tokenizer, example: Example, max_seq_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels; prompt positions carry IGNORED labels."""
    prompt_ids = tokenizer(example.prompt, add_special_tokens=False).input_ids
    completion_ids = tokenizer(example.completion, add_special_tokens=False).input_ids
    ids = (prompt_ids + completion_ids)[:max_seq_len]
    labels = ([IGNORED] * len(prompt_ids) + completion_ids)[:max_seq_len]
    return ids, labels


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORED, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, row_labels) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(row_labels)] = torch.tensor(row_labels)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
