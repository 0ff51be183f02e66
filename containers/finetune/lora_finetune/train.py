"""Entry point of the fine-tune image (SageMaker runs ``<entrypoint> train``).

Single job: data in the ``train`` channel, hyperparameters from SageMaker; the
artifact (a Triton model repository, or with ``inferfleet_artifact=adapter`` the
adapter alone) is written to ``/opt/ml/model``, which SageMaker packs as the
job's ``model.tar.gz``.

Batch job: the hyperparameter ``inferfleet_tasks_manifest`` names a task list
in S3; instance ``h`` of ``n`` (from resourceconfig.json) runs the tasks whose
index ``i`` has ``i % n == h``, reading each task's data from S3 and uploading
its archive to the task's ``output_uri``, or its failure to its ``failure_uri``.
"""

import json
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lora_finetune.artifact import pack, write_adapter_artifact, write_model_repository
from lora_finetune.data import read_examples
from lora_finetune.s3 import download_prefix, put_text, read_json, upload_file
from lora_finetune.sagemaker_env import (
    HostPlacement,
    SageMakerPaths,
    host_placement,
    read_hyperparameters,
)
from lora_finetune.settings import FineTuneSettings, base_model
from lora_finetune.trainer import fine_tune

TASKS_MANIFEST_HYPERPARAMETER = "inferfleet_tasks_manifest"
ARTIFACT_HYPERPARAMETER = "inferfleet_artifact"
ADAPTER_ARTIFACT = "adapter"
MAX_REASON_CHARS = 1024


def failure_reason(error: BaseException) -> str:
    """What SageMaker (or the publisher, for a batch task) shows the user."""
    return f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]


def train_into(
    settings: FineTuneSettings,
    data_dir: Path,
    root: Path,
    identity: dict,
    *,
    adapter_only: bool,
    max_runtime_s: float | None = None,
) -> Path:
    """Fine-tune on ``data_dir`` and lay the artifact out under ``root``: the adapter alone, or
    a Triton model repository; returns the folder to pack."""
    base = base_model()
    examples = read_examples(data_dir)
    with tempfile.TemporaryDirectory() as scratch:
        adapter_dir = Path(scratch) / "adapter"
        result = fine_tune(settings, base, examples, adapter_dir, max_runtime_s=max_runtime_s)
        metadata = {
            **identity,
            "base_model": base,
            "examples": len(examples),
            "steps": result.steps,
            "first_loss": result.losses[0],
            "final_loss": result.losses[-1],
            "hyperparameters": settings.model_dump(mode="json"),
        }
        if adapter_only:
            return write_adapter_artifact(root, adapter_dir, metadata)
        return write_model_repository(root, adapter_dir, metadata)


def tasks_for_host(tasks: Sequence[dict[str, Any]], placement: HostPlacement) -> list[dict]:
    return [task for task in tasks if task["index"] % placement.count == placement.index]


def _adapter_only(hyperparameters: dict[str, str]) -> bool:
    return hyperparameters.get(ARTIFACT_HYPERPARAMETER) == ADAPTER_ARTIFACT


def run_task(
    s3: Any, task: dict[str, Any], shared: dict[str, str], max_runtime_s: float | None
) -> None:
    settings = FineTuneSettings.from_hyperparameters({**shared, **task["hyperparameters"]})
    identity = {key: task[key] for key in ("job_id", "user_id", "model_id")}
    adapter_only = _adapter_only(shared)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = download_prefix(s3, task["data_uri"], Path(scratch) / "data")
        folder = train_into(
            settings,
            data_dir,
            Path(scratch) / "artifact",
            identity,
            adapter_only=adapter_only,
            max_runtime_s=max_runtime_s,
        )
        archive = pack(folder, Path(scratch) / "model.tar.gz", as_folder=not adapter_only)
        upload_file(s3, archive, task["output_uri"])


def run_batch(paths: SageMakerPaths, hyperparameters: dict[str, str]) -> dict[str, list]:
    """Run this host's share of the tasks, each on its own: a task that cannot train leaves
    its reason at its ``failure_uri`` and the next task runs."""
    import boto3

    s3 = boto3.client("s3")
    manifest = read_json(s3, hyperparameters[TASKS_MANIFEST_HYPERPARAMETER])
    shared = {k: v for k, v in hyperparameters.items() if k != TASKS_MANIFEST_HYPERPARAMETER}
    max_runtime_s = manifest.get("task_max_runtime_s")
    outcome: dict[str, list] = {"uploaded": [], "failed": []}
    for task in tasks_for_host(manifest["tasks"], host_placement(paths)):
        try:
            run_task(s3, task, shared, max_runtime_s)
        except Exception as error:  # one user's task fails alone, with a reason they can read
            reason = failure_reason(error)
            traceback.print_exc()
            put_text(s3, reason, task["failure_uri"])
            outcome["failed"].append({"job_id": task["job_id"], "error": reason})
        else:
            outcome["uploaded"].append(task["output_uri"])
    paths.model.mkdir(parents=True, exist_ok=True)
    (paths.model / "batch.json").write_text(json.dumps(outcome, indent=2))
    return outcome


def run_single(paths: SageMakerPaths, hyperparameters: dict[str, str]) -> Path:
    settings = FineTuneSettings.from_hyperparameters(hyperparameters)
    identity = {
        key: hyperparameters[key] for key in ("user_id", "model_id") if key in hyperparameters
    }
    adapter_only = _adapter_only(hyperparameters)
    return train_into(
        settings, paths.channel("train"), paths.model, identity, adapter_only=adapter_only
    )


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
        paths.failure.write_text(failure_reason(error))
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
