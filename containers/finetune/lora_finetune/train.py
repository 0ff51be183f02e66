"""Entry point of the fine-tune image (SageMaker runs ``<entrypoint> train``).

Single job: data in the ``train`` channel, hyperparameters from SageMaker; the
Triton model repository is written to ``/opt/ml/model``, which SageMaker packs
as the job's ``model.tar.gz``.

Batch job: the hyperparameter ``inferfleet_tasks_manifest`` names a task list
in S3; instance ``h`` of ``n`` (from resourceconfig.json) runs the tasks whose
index ``i`` has ``i % n == h``, reading each task's data from S3 and uploading
its archive to the task's ``output_uri``.
"""

import json
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lora_finetune.artifact import pack, write_model_repository
from lora_finetune.data import read_examples
from lora_finetune.s3 import download_prefix, read_json, upload_file
from lora_finetune.sagemaker_env import (
    HostPlacement,
    SageMakerPaths,
    host_placement,
    read_hyperparameters,
)
from lora_finetune.settings import FineTuneSettings
from lora_finetune.trainer import fine_tune

TASKS_MANIFEST_HYPERPARAMETER = "inferfleet_tasks_manifest"


def train_into(settings: FineTuneSettings, data_dir: Path, root: Path, identity: dict) -> Path:
    """Fine-tune on ``data_dir`` and lay the Triton model repository out under ``root``."""
    examples = read_examples(data_dir)
    with tempfile.TemporaryDirectory() as scratch:
        adapter_dir = Path(scratch) / "adapter"
        result = fine_tune(settings, examples, adapter_dir)
        metadata = {
            **identity,
            "base_model": settings.base_model,
            "examples": len(examples),
            "steps": result.steps,
            "first_loss": result.losses[0],
            "final_loss": result.losses[-1],
            "hyperparameters": settings.model_dump(mode="json"),
        }
        return write_model_repository(root, settings.model_name, adapter_dir, metadata)


def tasks_for_host(tasks: Sequence[dict[str, Any]], placement: HostPlacement) -> list[dict]:
    return [task for task in tasks if task["index"] % placement.count == placement.index]


def run_batch(paths: SageMakerPaths, hyperparameters: dict[str, str]) -> list[str]:
    """Run this host's share of the tasks; returns the uploaded archive URIs."""
    import boto3

    s3 = boto3.client("s3")
    manifest = read_json(s3, hyperparameters[TASKS_MANIFEST_HYPERPARAMETER])
    shared = {k: v for k, v in hyperparameters.items() if k != TASKS_MANIFEST_HYPERPARAMETER}
    uploaded = []
    for task in tasks_for_host(manifest["tasks"], host_placement(paths)):
        settings = FineTuneSettings.from_hyperparameters({**shared, **task["hyperparameters"]})
        identity = {key: task[key] for key in ("job_id", "user_id", "model_id")}
        with tempfile.TemporaryDirectory() as scratch:
            data_dir = download_prefix(s3, task["data_uri"], Path(scratch) / "data")
            model_dir = train_into(settings, data_dir, Path(scratch) / "repository", identity)
            archive = pack(model_dir, Path(scratch) / "model.tar.gz")
            upload_file(s3, archive, task["output_uri"])
        uploaded.append(task["output_uri"])
    paths.model.mkdir(parents=True, exist_ok=True)
    (paths.model / "batch.json").write_text(json.dumps({"uploaded": uploaded}, indent=2))
    return uploaded


def run_single(paths: SageMakerPaths, hyperparameters: dict[str, str]) -> Path:
    settings = FineTuneSettings.from_hyperparameters(hyperparameters)
    identity = {
        key: hyperparameters[key] for key in ("user_id", "model_id") if key in hyperparameters
    }
    return train_into(settings, paths.channel("train"), paths.model, identity)


def main(argv: Sequence[str] | None = None) -> int:
    del argv  # SageMaker passes "train"; everything else comes from /opt/ml.
    paths = SageMakerPaths.from_env()
    try:
        hyperparameters = read_hyperparameters(paths)
        if TASKS_MANIFEST_HYPERPARAMETER in hyperparameters:
            run_batch(paths, hyperparameters)
        else:
            run_single(paths, hyperparameters)
    except Exception as error:  # SageMaker shows this file as the job's FailureReason
        paths.failure.parent.mkdir(parents=True, exist_ok=True)
        paths.failure.write_text(f"{type(error).__name__}: {error}"[:1024])
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
