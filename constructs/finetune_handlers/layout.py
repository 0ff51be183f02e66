"""Names and S3 keys that the handlers, the construct and the CLI agree on.

An upload is ``uploads/{user_id}/{job_id}/`` in the data bucket: the training data under
``data/`` and a small ``manifest.json`` written last, whose creation registers the job.
"""

import hashlib
import re

UPLOAD_ROOT = "uploads/"
MANIFEST_NAME = "manifest.json"
DATA_FOLDER = "data/"
TRAINING_OUTPUT_ROOT = "training/"
BATCH_ROOT = "batches/"

# SageMaker names allow 63 characters; ids are kept short enough for any prefix we allow.
ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,34}[a-z0-9])?$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_TRAINING_JOB_PREFIX = 20


def upload_prefix(user_id: str, job_id: str) -> str:
    return f"{UPLOAD_ROOT}{user_id}/{job_id}/"


def manifest_key(user_id: str, job_id: str) -> str:
    return f"{upload_prefix(user_id, job_id)}{MANIFEST_NAME}"


def data_prefix(user_id: str, job_id: str) -> str:
    return f"{upload_prefix(user_id, job_id)}{DATA_FOLDER}"


def parse_manifest_key(key: str) -> tuple[str, str] | None:
    """``(user_id, job_id)`` of a manifest key, or None when the key is not one."""
    parts = key.split("/")
    if len(parts) != 4 or f"{parts[0]}/" != UPLOAD_ROOT or parts[3] != MANIFEST_NAME:
        return None
    user_id, job_id = parts[1], parts[2]
    if not NAME_PATTERN.match(user_id) or not ID_PATTERN.match(job_id):
        return None
    return user_id, job_id


def training_job_name(prefix: str, job_id: str) -> str:
    """Deterministic per job, so a retried launch can only ever find or make the same job."""
    return f"{prefix}-{job_id}"


def batch_training_job_name(prefix: str, job_ids: list[str]) -> str:
    """Upper-case ``B``: job ids are lower case, so no single job can take a batch's name."""
    digest = hashlib.sha256("\n".join(sorted(job_ids)).encode()).hexdigest()[:24]
    return f"{prefix}-B{digest}"


def is_batch_name(prefix: str, training_job: str) -> bool:
    return training_job.startswith(f"{prefix}-B")


def batch_manifest_key(training_job: str) -> str:
    return f"{BATCH_ROOT}{training_job}/tasks.json"


def batch_task_artifact_key(training_job: str, job_id: str) -> str:
    return f"{BATCH_ROOT}{training_job}/{job_id}/model.tar.gz"


def model_artifact_key(model_prefix: str, user_id: str, model_id: str) -> str:
    """Where the multi-model endpoint finds a user's model: ``TargetModel`` is the rest."""
    return f"{model_prefix}{target_model(user_id, model_id)}"


def target_model(user_id: str, model_id: str) -> str:
    return f"{user_id}/{model_id}.tar.gz"
