"""SageMaker training jobs: the request for one job or a batch of tasks, and a safe start.

A training job's name is fixed by the jobs it runs, so starting it again after a crash can
only find the job that already exists: SageMaker refuses a second job with the same name, and
a retry looks the name up first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from .jobs import Job
from .layout import TRAINING_OUTPUT_ROOT, batch_manifest_key, batch_task_artifact_key
from .settings import LauncherSettings

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        # Account quota on training instances: the job can run later, like a throttle.
        "ResourceLimitExceeded",
    }
)
# Hyperparameter the fine-tune container reads to run a batch: the S3 URI of the task list.
TASKS_MANIFEST_HYPERPARAMETER = "inferfleet_tasks_manifest"
# Set by the launcher, so the container can label what it trains; users cannot set them.
IDENTITY_HYPERPARAMETERS = ("user_id", "model_id")
RESERVED_HYPERPARAMETERS = frozenset({TASKS_MANIFEST_HYPERPARAMETER, *IDENTITY_HYPERPARAMETERS})


class StartOutcome(Enum):
    STARTED = "started"
    ALREADY_EXISTS = "already_exists"
    THROTTLED = "throttled"
    REJECTED = "rejected"


@dataclass(frozen=True)
class StartResult:
    outcome: StartOutcome
    error: str | None = None


def _is_duplicate_name(error: ClientError) -> bool:
    code = error.response["Error"]["Code"]
    message = error.response["Error"].get("Message", "")
    return code == "ResourceInUse" or (code == "ValidationException" and "unique" in message)


def _is_not_found(error: ClientError) -> bool:
    message = error.response["Error"].get("Message", "")
    return error.response["Error"]["Code"] == "ValidationException" and (
        "Could not find" in message or "not found" in message.lower()
    )


def training_job_exists(sagemaker: Any, name: str) -> bool:
    try:
        sagemaker.describe_training_job(TrainingJobName=name)
    except ClientError as error:
        if _is_not_found(error):
            return False
        raise
    return True


def _base_request(settings: LauncherSettings, name: str, instance_count: int) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image,
            "TrainingInputMode": "File",
        },
        "RoleArn": settings.training_role_arn,
        "OutputDataConfig": {"S3OutputPath": f"s3://{settings.data_bucket}/{TRAINING_OUTPUT_ROOT}"},
        "ResourceConfig": {
            "InstanceType": settings.instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": settings.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_s},
        "EnableInterContainerTrafficEncryption": instance_count > 1,
    }


def single_job_request(settings: LauncherSettings, job: Job, name: str) -> dict[str, Any]:
    request = _base_request(settings, name, instance_count=1)
    request["HyperParameters"] = {
        **job.hyperparameters,
        "user_id": job.user_id,
        "model_id": job.model_id,
    }
    request["InputDataConfig"] = [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": job.data_uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
    ]
    request["Tags"] = [{"Key": "inferfleet:job-id", "Value": job.job_id}]
    return request


def batch_tasks(settings: LauncherSettings, jobs: Sequence[Job], name: str) -> dict[str, Any]:
    """The task list of a multi-instance job: instance ``h`` of ``n`` runs tasks ``i % n == h``."""
    ordered = sorted(jobs, key=lambda job: job.task_index or 0)
    return {
        "training_job_name": name,
        "tasks": [
            {
                "index": index,
                "job_id": job.job_id,
                "user_id": job.user_id,
                "model_id": job.model_id,
                "data_uri": job.data_uri,
                "hyperparameters": job.hyperparameters,
                "output_uri": f"s3://{settings.data_bucket}/"
                f"{batch_task_artifact_key(name, job.job_id)}",
            }
            for index, job in enumerate(ordered)
        ],
    }


def batch_request(settings: LauncherSettings, jobs: Sequence[Job], name: str) -> dict[str, Any]:
    instances = max(1, min(settings.batch_instances, len(jobs)))
    request = _base_request(settings, name, instance_count=instances)
    manifest_uri = f"s3://{settings.data_bucket}/{batch_manifest_key(name)}"
    request["HyperParameters"] = {TASKS_MANIFEST_HYPERPARAMETER: manifest_uri}
    request["Tags"] = [{"Key": "inferfleet:batch-size", "Value": str(len(jobs))}]
    return request


def write_batch_manifest(
    s3: Any, settings: LauncherSettings, jobs: Sequence[Job], name: str
) -> None:
    """Same jobs, same bytes: a retry rewrites exactly what the first try wrote."""
    body = json.dumps(batch_tasks(settings, jobs, name), sort_keys=True, indent=1)
    s3.put_object(
        Bucket=settings.data_bucket,
        Key=batch_manifest_key(name),
        Body=body.encode(),
        ContentType="application/json",
    )


def start_training_job(sagemaker: Any, request: dict[str, Any], *, look_first: bool) -> StartResult:
    """Start a training job at most once per name.

    ``look_first`` is for retries whose earlier attempt may have reached SageMaker before a
    crash: the name is looked up before anything is created.
    """
    name = request["TrainingJobName"]
    try:
        if look_first and training_job_exists(sagemaker, name):
            return StartResult(StartOutcome.ALREADY_EXISTS)
        sagemaker.create_training_job(**request)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in THROTTLING_CODES:
            return StartResult(StartOutcome.THROTTLED, error=code)
        if _is_duplicate_name(error):
            return StartResult(StartOutcome.ALREADY_EXISTS)
        if code == "ValidationException":
            return StartResult(StartOutcome.REJECTED, error=error.response["Error"]["Message"])
        raise
    return StartResult(StartOutcome.STARTED)
