"""SageMaker training jobs: the request for one job or a batch of tasks, and a safe start.

A training job's name is fixed by the jobs it runs, so starting it again after a crash can
only find the job that already exists: SageMaker refuses a second job with the same name, and
a retry looks the name up first.

Single jobs run with network isolation by default: SageMaker brings the data in and takes the
model out, and the container reaches nothing. A batch's container moves each task's data and
artifact itself, so batches run with the network under a role of their own that reaches only
the upload and batch prefixes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from .hyperparameters import (
    ADAPTER_ARTIFACT,
    ARTIFACT_HYPERPARAMETER,
    TASKS_MANIFEST_HYPERPARAMETER,
)
from .jobs import Job
from .layout import (
    TRAINING_OUTPUT_ROOT,
    batch_manifest_key,
    batch_task_artifact_key,
    batch_task_failure_key,
    is_batch_name,
)
from .schema import MAX_RUNTIME_LIMIT_S
from .settings import Hosting, LauncherSettings

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
# SageMaker's limits on a training job's run time and on a warm pool's keep-alive.


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


def describe_training_job(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        return sagemaker.describe_training_job(TrainingJobName=name)
    except ClientError as error:
        if _is_not_found(error):
            return None
        raise


def training_job_exists(sagemaker: Any, name: str) -> bool:
    return describe_training_job(sagemaker, name) is not None


def _base_request(
    settings: LauncherSettings, name: str, *, instance_count: int, role_arn: str
) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image,
            "TrainingInputMode": "File",
        },
        "RoleArn": role_arn,
        "OutputDataConfig": {"S3OutputPath": f"s3://{settings.data_bucket}/{TRAINING_OUTPUT_ROOT}"},
        "ResourceConfig": {
            "InstanceType": settings.instance_type,
            "InstanceCount": instance_count,
            "VolumeSizeInGB": settings.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_s},
        "EnableInterContainerTrafficEncryption": instance_count > 1,
    }


def _single_job_base(settings: LauncherSettings, name: str) -> dict[str, Any]:
    request = _base_request(settings, name, instance_count=1, role_arn=settings.single_role_arn)
    request["EnableNetworkIsolation"] = settings.network_isolation
    if settings.warm_pool_keep_alive_s > 0:
        request["ResourceConfig"]["KeepAlivePeriodInSeconds"] = settings.warm_pool_keep_alive_s
    return request


def _artifact(settings: LauncherSettings) -> dict[str, str]:
    """The hyperparameter that picks what the container packs for the endpoint's hosting."""
    if settings.hosting is Hosting.INFERENCE_COMPONENTS:
        return {ARTIFACT_HYPERPARAMETER: ADAPTER_ARTIFACT}
    return {}


def single_job_request(settings: LauncherSettings, job: Job, name: str) -> dict[str, Any]:
    request = _single_job_base(settings, name)
    request["HyperParameters"] = {
        **job.hyperparameters,
        "user_id": job.user_id,
        "model_id": job.model_id,
        **_artifact(settings),
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
    request["Tags"] = [
        {"Key": "inferfleet:user-id", "Value": job.user_id},
        {"Key": "inferfleet:job-id", "Value": job.job_id},
    ]
    return request


def batch_instances(settings: LauncherSettings, tasks: int) -> int:
    return max(1, min(settings.batch_instances, tasks))


def batch_tasks(settings: LauncherSettings, jobs: Sequence[Job], name: str) -> dict[str, Any]:
    """The task list of a multi-instance job: instance ``h`` of ``n`` runs tasks ``i % n == h``.

    Each task has the run time of a single job; a task that cannot train leaves the reason at
    its ``failure_uri`` and the host goes on with the next, so one user's bad upload fails
    that user's task only.
    """
    ordered = sorted(jobs, key=lambda job: job.task_index or 0)
    bucket = f"s3://{settings.data_bucket}/"
    return {
        "training_job_name": name,
        "task_max_runtime_s": settings.max_runtime_s,
        "tasks": [
            {
                "index": index,
                "job_id": job.job_id,
                "user_id": job.user_id,
                "model_id": job.model_id,
                "data_uri": job.data_uri,
                "hyperparameters": job.hyperparameters,
                "output_uri": bucket + batch_task_artifact_key(name, job.user_id, job.job_id),
                "failure_uri": bucket + batch_task_failure_key(name, job.user_id, job.job_id),
            }
            for index, job in enumerate(ordered)
        ],
    }


def batch_request(settings: LauncherSettings, jobs: Sequence[Job], name: str) -> dict[str, Any]:
    instances = batch_instances(settings, len(jobs))
    request = _base_request(
        settings, name, instance_count=instances, role_arn=settings.batch_role_arn
    )
    # A host runs its tasks one after another, each within a single job's run time.
    runtime = settings.max_runtime_s * math.ceil(len(jobs) / instances)
    request["StoppingCondition"]["MaxRuntimeInSeconds"] = min(runtime, MAX_RUNTIME_LIMIT_S)
    request["EnableNetworkIsolation"] = False
    manifest_uri = f"s3://{settings.data_bucket}/{batch_manifest_key(name)}"
    request["HyperParameters"] = {
        TASKS_MANIFEST_HYPERPARAMETER: manifest_uri,
        **_artifact(settings),
    }
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


# What SageMaker compares to move a warm pool to the next job (besides the VPC, unused here).
_WARM_POOL_MATCH = ("RoleArn", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption")
_WARM_POOL_RESOURCES = ("InstanceType", "InstanceCount", "VolumeSizeInGB", "VolumeKmsKeyId")


def _warm_pool_fit(job: dict[str, Any]) -> tuple[Any, ...]:
    resources = job.get("ResourceConfig") or {}
    return (
        *(job.get(key) for key in _WARM_POOL_MATCH),
        *(resources.get(key) for key in _WARM_POOL_RESOURCES),
    )


def available_warm_pools(sagemaker: Any, settings: LauncherSettings, *, wanted: int) -> int:
    """How many of this queue's warm pools (at most ``wanted``) a single job would reuse now."""
    if settings.warm_pool_keep_alive_s <= 0 or wanted <= 0:
        return 0
    prefix = f"{settings.training_job_prefix}-"
    fit = _warm_pool_fit(_single_job_base(settings, prefix))
    response = sagemaker.list_training_jobs(
        WarmPoolStatusEquals="Available",
        NameContains=prefix,
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=100,
    )
    pools = 0
    for summary in response.get("TrainingJobSummaries", []):
        name = summary["TrainingJobName"]
        if (summary.get("WarmPoolStatus") or {}).get("Status") != "Available":
            continue
        if not name.startswith(prefix) or is_batch_name(settings.training_job_prefix, name):
            continue
        described = describe_training_job(sagemaker, name)
        if described is not None and _warm_pool_fit(described) == fit:
            pools += 1
            if pools >= wanted:
                break
    return pools
