"""The fine-tune entry point end to end: SageMaker's file contract in, a Triton artifact out."""

import json
import os
import tarfile
import tempfile
from pathlib import Path

import pytest
import torch
from lora_finetune.artifact import pack
from lora_finetune.train import (
    ADAPTER_ARTIFACT,
    ARTIFACT_HYPERPARAMETER,
    TASKS_MANIFEST_HYPERPARAMETER,
    main,
)
from moto_server import moto, moto_server  # noqa: F401 - fixtures
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from triton_http import generate

from inferfleet.constructs.finetune_handlers.hyperparameters import (
    ADAPTER_ARTIFACT as LAUNCHER_ADAPTER_ARTIFACT,
)
from inferfleet.constructs.finetune_handlers.hyperparameters import (
    ARTIFACT_HYPERPARAMETER as LAUNCHER_ARTIFACT_HYPERPARAMETER,
)
from inferfleet.constructs.finetune_handlers.hyperparameters import (
    TASKS_MANIFEST_HYPERPARAMETER as LAUNCHER_HYPERPARAMETER,
)
from inferfleet.constructs.finetune_handlers.jobs import Job, JobStatus
from inferfleet.constructs.finetune_handlers.layout import (
    batch_task_artifact_key,
    batch_task_failure_key,
)
from inferfleet.constructs.finetune_handlers.settings import Hosting, LauncherSettings
from inferfleet.constructs.finetune_handlers.training import batch_tasks
from inferfleet.containers.local_triton import LocalTriton

pytestmark = pytest.mark.slow

EXAMPLES = [
    {"prompt": f"Q{index}: which tent for the beach?", "completion": " the green dome tent"}
    for index in range(8)
]


def _sagemaker_root(root: Path, hyperparameters: dict[str, str], hosts: list[str]) -> Path:
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": hosts[-1], "hosts": hosts})
    )
    return root


def _run(root: Path, base_model: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("INFERFLEET_SAGEMAKER_ROOT", str(root))
    monkeypatch.setenv("INFERFLEET_BASE_MODEL", str(base_model))
    return main(["train"])


def test_a_single_job_writes_a_repository_that_loads_and_generates(
    tmp_path: Path, tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _sagemaker_root(
        tmp_path / "ml", {"max_steps": "2", "batch_size": "4", "lr": "0.01"}, ["algo-1"]
    )
    train = root / "input" / "data" / "train"
    train.mkdir(parents=True)
    (train / "part-0.jsonl").write_text("\n".join(json.dumps(row) for row in EXAMPLES))

    assert _run(root, tiny_lm_dir, monkeypatch) == 0

    version = root / "model" / "llm" / "1"
    metadata = json.loads((version / "inferfleet.json").read_text())
    assert (metadata["steps"], metadata["examples"]) == (2, 8)
    adapter = load_file(version / "adapter" / "adapter_model.safetensors")
    # LoRA B starts at zero: any non-zero B means the two steps trained the adapter.
    assert any(
        name.endswith("lora_B.weight") and tensor.abs().sum() > 0
        for name, tensor in adapter.items()
    )

    # SageMaker packs /opt/ml/model; the endpoint unpacks it into its model repository.
    archive = pack(root / "model" / "llm", tmp_path / "u1" / "m1.tar.gz")
    repository = tmp_path / "repository"
    with tarfile.open(archive) as packed:
        packed.extractall(repository, filter="data")
    assert sorted(path.name for path in repository.iterdir()) == ["llm"]

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_lm_dir), version / "adapter"
    ).eval()
    prompt = tokenizer("Q9: which tent for the beach?", return_tensors="pt").input_ids
    with torch.inference_mode():
        expected = tokenizer.decode(
            tuned.generate(prompt, max_new_tokens=6, do_sample=False)[0, prompt.shape[1] :],
            skip_special_tokens=True,
        )

    environment = {"INFERFLEET_BASE_MODEL": str(tiny_lm_dir), "OMP_NUM_THREADS": "1"}
    with LocalTriton(repository, tmp_path, environment) as triton:
        answer = generate(
            triton.url, "llm", {"text_input": "Q9: which tent for the beach?", "max_tokens": 6}
        )
    assert answer["text_output"] == expected
    assert answer["text_output"].strip()


def test_for_adapter_components_a_job_leaves_the_adapter_alone(
    tmp_path: Path, tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (ARTIFACT_HYPERPARAMETER, ADAPTER_ARTIFACT) == (
        LAUNCHER_ARTIFACT_HYPERPARAMETER,
        LAUNCHER_ADAPTER_ARTIFACT,
    )
    hyperparameters = {"max_steps": "1", "batch_size": "4", ARTIFACT_HYPERPARAMETER: "adapter"}
    root = _sagemaker_root(tmp_path / "ml", hyperparameters, ["algo-1"])
    train = root / "input" / "data" / "train"
    train.mkdir(parents=True)
    (train / "part-0.jsonl").write_text("\n".join(json.dumps(row) for row in EXAMPLES))

    assert _run(root, tiny_lm_dir, monkeypatch) == 0, (root / "output" / "failure").read_text()

    model = root / "model"
    assert sorted(path.name for path in model.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "inferfleet.json",
    ]
    archive = pack(model, tmp_path / "adapter.tar.gz", as_folder=False)
    with tarfile.open(archive) as packed:
        assert "adapter_config.json" in packed.getnames()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm_dir), model)
    assert tuned.peft_config["default"].r == 8


def test_bad_data_fails_the_job_with_a_reason(
    tmp_path: Path, tiny_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _sagemaker_root(tmp_path / "ml", {}, ["algo-1"])
    train = root / "input" / "data" / "train"
    train.mkdir(parents=True)
    (train / "data.jsonl").write_text('{"prompt": "no completion"}\n')
    assert _run(root, tiny_lm_dir, monkeypatch) == 1
    reason = (root / "output" / "failure").read_text()
    assert reason.startswith("DataError: data.jsonl:1:")


def _launcher_settings(bucket: str) -> LauncherSettings:
    return LauncherSettings(
        data_bucket=bucket,
        training_job_prefix="ft",
        training_image="image",
        single_role_arn="arn:aws:iam::123456789012:role/single",
        batch_role_arn="arn:aws:iam::123456789012:role/batch",
        instance_type="ml.trn1.2xlarge",
        volume_size_gb=100,
        max_runtime_s=3600,
        network_isolation=True,
        warm_pool_keep_alive_s=0,
        max_running_jobs=10,
        create_calls_per_second=1.0,
        max_attempts=3,
        lease_s=900,
        batch_threshold=2,
        batch_tasks=6,
        batch_instances=2,
        hosting=Hosting.MULTI_MODEL,
    )


def test_a_batch_host_trains_its_share_and_a_bad_upload_fails_only_its_task(
    tmp_path: Path,
    tiny_lm_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto,  # noqa: F811
) -> None:
    """Host 2 of 2 runs tasks 1, 3 and 5. Task 3's user uploaded a key that climbs out of the
    task's folder onto a file of the image; task 5's spells '..' in fullwidth dots."""
    import boto3

    assert TASKS_MANIFEST_HYPERPARAMETER == LAUNCHER_HYPERPARAMETER
    bucket = "finetune-data"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    sentinel = tmp_path / "image" / "serving" / "model.py"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("the serving code every later task packs")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    tricks = {
        3: "../" * 40 + str(sentinel).lstrip("/"),
        5: "\uff0e\uff0e/\uff0e\uff0e/model.py",
    }
    jobs = []
    for index in range(6):
        prefix = f"uploads/user-{index}/job-{index}/data/"
        data = "\n".join(json.dumps(row) for row in EXAMPLES).encode()
        s3.put_object(Bucket=bucket, Key=f"{prefix}train.jsonl", Body=data)
        if index in tricks:
            s3.put_object(Bucket=bucket, Key=prefix + tricks[index], Body=b"import os  # evil")
        jobs.append(
            Job(
                user_id=f"user-{index}",
                job_id=f"job-{index}",
                model_id=f"style-{index}",
                status=JobStatus.QUEUED,
                data_uri=f"s3://{bucket}/{prefix}",
                created_at="2026-11-21T00:00:00Z",
                hyperparameters={"max_steps": "1", "batch_size": "8"},
                task_index=index,
            )
        )
    manifest = batch_tasks(_launcher_settings(bucket), jobs, "ft-Bbatch")
    s3.put_object(
        Bucket=bucket, Key="batches/ft-Bbatch/tasks.json", Body=json.dumps(manifest).encode()
    )
    root = _sagemaker_root(
        tmp_path / "ml",
        {TASKS_MANIFEST_HYPERPARAMETER: f"s3://{bucket}/batches/ft-Bbatch/tasks.json"},
        ["algo-1", "algo-2"],  # this host is algo-2: index 1 of 2
    )

    assert _run(root, tiny_lm_dir, monkeypatch) == 0, (root / "output" / "failure").read_text()

    assert sentinel.read_text() == "the serving code every later task packs"
    assert not list((tmp_path / "scratch").iterdir()), "every task's scratch is removed"
    keys = {
        entry["Key"] for entry in s3.list_objects_v2(Bucket=bucket, Prefix="batches/")["Contents"]
    }
    task = {i: ("ft-Bbatch", f"user-{i}", f"job-{i}") for i in range(6)}
    artifacts = {i for i in range(6) if batch_task_artifact_key(*task[i]) in keys}
    failures = {i for i in range(6) if batch_task_failure_key(*task[i]) in keys}
    assert (artifacts, failures) == ({1}, {3, 5})
    for index in failures:
        failure = s3.get_object(Bucket=bucket, Key=batch_task_failure_key(*task[index]))
        reason = failure["Body"].read().decode()
        assert reason.startswith("PathError: data key 'uploads/user-")
        assert "leave the task's folder" in reason
    archive = tmp_path / "job-1.tar.gz"
    s3.download_file(bucket, batch_task_artifact_key(*task[1]), str(archive))
    with tarfile.open(archive) as packed:
        names = set(packed.getnames())
        metadata = json.load(packed.extractfile("llm/1/inferfleet.json"))
        served = packed.extractfile("llm/1/model.py").read()
    assert {"llm/config.pbtxt", "llm/1/model.py", "llm/1/adapter/adapter_config.json"} <= names
    assert b"evil" not in served
    assert (metadata["user_id"], metadata["model_id"], metadata["steps"]) == (
        "user-1",
        "style-1",
        1,
    )
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://localhost")
