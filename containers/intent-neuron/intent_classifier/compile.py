"""Trace the classifier once per sequence bucket into a folder the Triton model loads.

``--target neuron`` compiles with torch-neuronx (run it on an inf2/trn1 host or
in the image at build or first start; neuronx-cc casts matrix multiplies to
bf16 by default); ``--target cpu`` traces TorchScript graphs of the same shapes
with int8 dynamic quantisation of the linear layers, which is what the CPU
tests and benchmarks run.

    python -m intent_classifier.compile --model-dir /opt/ml/model --out /opt/models/intent
"""

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoTokenizer

from intent_classifier.buckets import DEFAULT_BUCKETS
from intent_classifier.model import load_classifier

MANIFEST = "manifest.json"
Target = Literal["neuron", "cpu"]
CpuPrecision = Literal["int8", "float32"]


def graph_file(bucket: int, batch_size: int) -> str:
    return f"intent_s{bucket}_b{batch_size}.pt"


def trace_bucket(
    model: torch.nn.Module, bucket: int, batch_size: int, target: Target
) -> torch.jit.ScriptModule:
    example = (
        torch.ones((batch_size, bucket), dtype=torch.long),
        torch.ones((batch_size, bucket), dtype=torch.long),
    )
    if target == "neuron":
        import torch_neuronx

        return torch_neuronx.trace(model, example)
    with torch.inference_mode():
        return torch.jit.freeze(torch.jit.trace(model, example))


def compile_classifier(
    model_dir: Path,
    out_dir: Path,
    *,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    batch_sizes: Sequence[int] = (1,),
    target: Target = "neuron",
    cpu_precision: CpuPrecision = "int8",
) -> Path:
    model, labels = load_classifier(model_dir)
    if target == "cpu" and cpu_precision == "int8":
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    out_dir.mkdir(parents=True, exist_ok=True)
    for bucket in buckets:
        for batch_size in batch_sizes:
            torch.jit.save(
                trace_bucket(model, bucket, batch_size, target),
                out_dir / graph_file(bucket, batch_size),
            )
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    manifest = {
        "target": target,
        "precision": cpu_precision if target == "cpu" else "neuronx-cc default",
        "buckets": sorted(buckets),
        "batch_sizes": sorted(batch_sizes),
        "labels": labels,
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out_dir


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="encoder + head + labels")
    parser.add_argument("--out", type=Path, required=True, help="folder for the traced graphs")
    parser.add_argument("--buckets", default=",".join(map(str, DEFAULT_BUCKETS)))
    parser.add_argument(
        "--batch-sizes",
        default="1",
        help="rows per graph (per core on Neuron); several give batch buckets, e.g. 1,8",
    )
    parser.add_argument("--target", choices=("neuron", "cpu"), default="neuron")
    parser.add_argument("--cpu-precision", choices=("int8", "float32"), default="int8")
    parser.add_argument("--overwrite", action="store_true")
    arguments = parser.parse_args(argv)
    if arguments.out.exists() and arguments.overwrite:
        shutil.rmtree(arguments.out)
    buckets = [int(size) for size in arguments.buckets.split(",")]
    compile_classifier(
        arguments.model_dir,
        arguments.out,
        buckets=buckets,
        batch_sizes=[int(size) for size in arguments.batch_sizes.split(",")],
        target=arguments.target,
        cpu_precision=arguments.cpu_precision,
    )


if __name__ == "__main__":
    main()
