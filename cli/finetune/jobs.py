"""Submit a fine-tune job, read its status, list a user's jobs and models."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferfleet.cli.errors import UserError
from inferfleet.cli.finetune.stack_outputs import StackTarget, require, stack_outputs
from inferfleet.cli.user_files import regular_file_size
from inferfleet.constructs.finetune_handlers.layout import (
    ID_RULE,
    data_prefix,
    is_id,
    manifest_key,
)
from inferfleet.infra import names

FEATURE = "the fine-tune queue (personalization)"


@dataclass(frozen=True)
class Submission:
    job_id: str
    user_id: str
    model_id: str
    bucket: str
    files: int
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "manifest": f"s3://{self.bucket}/{manifest_key(self.user_id, self.job_id)}",
        }


def parse_hyperparameters(pairs: list[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise UserError(f"--hp {pair!r}: expected KEY=VALUE, e.g. --hp epochs=3")
        parsed[key.strip()] = value
    return parsed


def check_id(flag: str, value: str | None) -> str:
    if not is_id(value):
        raise UserError(f"{flag} {value!r}: not an id; use {ID_RULE}")
    return value  # type: ignore[return-value]


def data_files(path: Path) -> list[tuple[Path, str]]:
    """``(file, key suffix)`` pairs: one file, or every file under a directory."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if files:
            return [(file, file.relative_to(path).as_posix()) for file in files]
        raise UserError(f"--data {path}: the directory has no files; point at the training data")
    regular_file_size(path, flag="--data", what="the training data: a file or a folder of files")
    return [(path, path.name)]


def submit(
    target: StackTarget,
    *,
    user_id: str,
    data: Path,
    hyperparameters: dict[str, str],
    model_id: str | None,
    on_file: Callable[[str, int], None] = lambda key, size: None,
) -> Submission:
    """Upload the data, then the manifest whose creation registers the job."""
    files = data_files(data)
    outputs = stack_outputs(target)
    bucket = require(outputs, names.FINETUNE_DATA_BUCKET, target, FEATURE)
    job_id = uuid.uuid4().hex
    s3 = target.aws.s3_transfer_client(target.region)
    total = 0
    for file, suffix in files:
        key = f"{data_prefix(user_id, job_id)}{suffix}"
        s3.upload_file(str(file), bucket, key)
        total += file.stat().st_size
        on_file(key, file.stat().st_size)
    manifest: dict[str, Any] = {"hyperparameters": hyperparameters}
    if model_id:
        manifest["model_id"] = model_id
    # Written last: its creation is what registers the job.
    s3.put_object(
        Bucket=bucket,
        Key=manifest_key(user_id, job_id),
        Body=json.dumps(manifest).encode(),
        ContentType="application/json",
    )
    return Submission(
        job_id=job_id,
        user_id=user_id,
        model_id=model_id or job_id,
        bucket=bucket,
        files=len(files),
        bytes=total,
    )


def job_store(target: StackTarget, outputs: dict[str, str] | None = None) -> Any:
    from inferfleet.constructs.finetune_handlers.jobs import JobStore

    outputs = stack_outputs(target) if outputs is None else outputs
    return JobStore(
        target.aws.client("dynamodb", target.region),
        require(outputs, names.FINETUNE_JOBS_TABLE, target, FEATURE),
        require(outputs, names.FINETUNE_MODELS_TABLE, target, FEATURE),
    )


def job_status(target: StackTarget, user_id: str, job_id: str) -> dict[str, Any]:
    job = job_store(target).get(user_id, job_id)
    if job is None:
        raise UserError(
            f"job {job_id} of user {user_id}: not found in stack {target.stack_name} "
            f"({target.region}); a job appears seconds after its upload, check the id and the "
            "user given to `finetune submit`",
            exit_code=1,
        )
    return job.as_dict()


def user_jobs_and_models(target: StackTarget, user_id: str) -> dict[str, Any]:
    store = job_store(target)
    jobs = sorted((job.as_dict() for job in store.for_user(user_id)), key=lambda j: j["created_at"])
    models = sorted(store.models_of(user_id), key=lambda model: model["model_id"])
    return {"user_id": user_id, "jobs": jobs, "models": models}
