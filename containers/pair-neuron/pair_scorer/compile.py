"""Trace the sentence encoder once per sequence bucket into a folder the scorer loads.

``--target neuron`` compiles each bucket with torch-neuronx for one NeuronCore (run it on
an inf2/trn1 host, or let the container do it at start; neuronx-cc casts matrix
multiplies to bf16 by default); every worker then loads its own copy onto its core.
``--target cpu`` traces TorchScript graphs of the same shapes, which is what runs here.
Publishing the traced folder as the model artifact saves the trace at every job start.

    python -m pair_scorer.compile --model-dir /opt/ml/model --out /opt/ml/traced
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer

from pair_scorer.buckets import DEFAULT_BUCKETS, parse_buckets
from pair_scorer.encoder import load_encoder

MANIFEST = "manifest.json"
TARGETS = ("neuron", "cpu")
DEFAULT_BATCH_SIZE = 8


def graph_file(bucket: int) -> str:
    return f"encoder_s{bucket}.pt"


def example_inputs(bucket: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (batch_size, bucket)
    return torch.ones(shape, dtype=torch.long), torch.ones(shape, dtype=torch.long)


def trace_bucket(
    model: torch.nn.Module, bucket: int, batch_size: int, target: str
) -> torch.jit.ScriptModule:
    example = example_inputs(bucket, batch_size)
    if target == "neuron":
        import torch_neuronx

        return torch_neuronx.trace(model, example)
    with torch.inference_mode():
        return torch.jit.freeze(torch.jit.trace(model, example))


def is_traced(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def compile_encoder(
    model_dir: Path,
    out_dir: Path,
    *,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    target: str = "neuron",
) -> Path:
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: use one of {', '.join(TARGETS)}")
    model = load_encoder(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for bucket in sorted(buckets):
        torch.jit.save(
            trace_bucket(model, bucket, batch_size, target), out_dir / graph_file(bucket)
        )
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    manifest = {"target": target, "buckets": sorted(buckets), "batch_size": batch_size}
    # Written last: a folder with a manifest holds every graph it names.
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="encoder folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the traced graphs")
    parser.add_argument("--buckets", default=",".join(map(str, DEFAULT_BUCKETS)))
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="rows per graph call"
    )
    parser.add_argument("--target", choices=TARGETS, default="neuron")
    parser.add_argument("--overwrite", action="store_true")
    arguments = parser.parse_args(argv)
    if arguments.out.exists() and arguments.overwrite:
        shutil.rmtree(arguments.out)
    compile_encoder(
        arguments.model_dir,
        arguments.out,
        buckets=parse_buckets(arguments.buckets),
        batch_size=arguments.batch_size,
        target=arguments.target,
    )


if __name__ == "__main__":
    main()
