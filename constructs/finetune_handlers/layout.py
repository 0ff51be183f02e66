"""Ids, names and S3 keys that the handlers, the construct and the CLI agree on.

An upload is ``uploads/{user_id}/{job_id}/`` in the data bucket: the training data under
``data/`` and a small ``manifest.json`` written last, whose creation registers the job.
A job is known by its user and its id together: two users may pick the same job id.
"""

import hashlib
import re

UPLOAD_ROOT = "uploads/"
MANIFEST_NAME = "manifest.json"
DATA_FOLDER = "data/"
TRAINING_OUTPUT_ROOT = "training/"
BATCH_ROOT = "batches/"
TASK_ARTIFACT_NAME = "model.tar.gz"
TASK_FAILURE_NAME = "failure.txt"

# The one pattern of user, job and model ids. Ids become S3 key segments, local folder names
# and DynamoDB keys, so '.', '..', '/' and leading punctuation are never ids.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ID_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
# Hex digits of the digests in names: SageMaker names allow 63 characters.
_DIGEST_CHARS = 32
MAX_TRAINING_JOB_NAME = 63
# "{prefix}-B{digest}" is the longest name made from a prefix.
MAX_TRAINING_JOB_PREFIX = MAX_TRAINING_JOB_NAME - len("-B") - _DIGEST_CHARS


def is_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def id_problem(field: str, value: object) -> str | None:
    """Why ``value`` cannot be the ``field`` id, or None when it can."""
    if is_id(value):
        return None
    return f"{field} {value!r} is not an id: use {ID_RULE}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:_DIGEST_CHARS]


def upload_prefix(user_id: str, job_id: str) -> str:
    return f"{UPLOAD_ROOT}{user_id}/{job_id}/"


def manifest_key(user_id: str, job_id: str) -> str:
    return f"{upload_prefix(user_id, job_id)}{MANIFEST_NAME}"


def data_prefix(user_id: str, job_id: str) -> str:
    return f"{upload_prefix(user_id, job_id)}{DATA_FOLDER}"


def parse_manifest_key(key: str) -> tuple[str, str] | None:
    """``(user_id, job_id)`` of a key shaped like a manifest's, or None.

    The parts are returned as written, ids or not: an upload with a bad id still becomes a
    (failed) job its user can see.
    """
    parts = key.split("/")
    if len(parts) != 4 or f"{parts[0]}/" != UPLOAD_ROOT or parts[3] != MANIFEST_NAME:
        return None
    if not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def training_job_name(prefix: str, user_id: str, job_id: str) -> str:
    """Deterministic per job, so a retried launch can only ever find or make the same job."""
    return f"{prefix}-{_digest(user_id, job_id)}"


def batch_training_job_name(prefix: str, jobs: list[tuple[str, str]]) -> str:
    """Upper-case ``B``: digests are lower case, so no single job can take a batch's name."""
    return f"{prefix}-B{_digest(*sorted(f'{user}/{job}' for user, job in jobs))}"


def is_batch_name(prefix: str, training_job: str) -> bool:
    return training_job.startswith(f"{prefix}-B")


def training_output_prefix(training_job: str) -> str:
    """Where SageMaker puts a single job's ``output/model.tar.gz``."""
    return f"{TRAINING_OUTPUT_ROOT}{training_job}/"


def batch_manifest_key(training_job: str) -> str:
    return f"{BATCH_ROOT}{training_job}/tasks.json"


def batch_task_prefix(training_job: str, user_id: str, job_id: str) -> str:
    return f"{BATCH_ROOT}{training_job}/{user_id}/{job_id}/"


def batch_task_artifact_key(training_job: str, user_id: str, job_id: str) -> str:
    return f"{batch_task_prefix(training_job, user_id, job_id)}{TASK_ARTIFACT_NAME}"


def batch_task_failure_key(training_job: str, user_id: str, job_id: str) -> str:
    """What a batch task that could not train leaves instead of its artifact: the reason."""
    return f"{batch_task_prefix(training_job, user_id, job_id)}{TASK_FAILURE_NAME}"


def target_model(user_id: str, model_id: str, version: str) -> str:
    """A model version as the multi-model endpoint's ``TargetModel``.

    Every version has its own key, never overwritten: an endpoint that cached one version
    keeps serving it whole until the user's record points at the next.
    """
    return f"{user_id}/{model_id}/{version}.tar.gz"


def model_artifact_key(model_prefix: str, user_id: str, model_id: str, version: str) -> str:
    return f"{model_prefix}{target_model(user_id, model_id, version)}"


def adapter_component_name(prefix: str, user_id: str, model_id: str) -> str:
    """The inference component serving a user's model as an adapter on the base component."""
    return f"{prefix}-{_digest('adapter', user_id, model_id)}"
