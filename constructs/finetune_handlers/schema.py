"""Keys and indexes of the fine-tune tables, shared by the construct, the handlers and the CLI."""

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    LAUNCHING = "LAUNCHING"
    TRAINING = "TRAINING"
    READY = "READY"
    FAILED = "FAILED"


TERMINAL_STATUSES = frozenset({JobStatus.READY, JobStatus.FAILED})
ACTIVE_STATUSES = frozenset({JobStatus.LAUNCHING, JobStatus.TRAINING})

# Jobs table: one item per job, plus one counter item holding the running training jobs.
JOB_KEY = "job_id"
CAPACITY_ITEM_KEY = "#capacity"
RUNNING_ATTRIBUTE = "running"
BY_STATUS_INDEX = "by-status"
BY_USER_INDEX = "by-user"
BY_TRAINING_JOB_INDEX = "by-training-job"
CREATED_AT = "created_at"

# Models table: user -> models.
USER_KEY = "user_id"
MODEL_KEY = "model_id"

# Events the publisher puts on the bus for the application.
MODEL_READY_DETAIL_TYPE = "Fine-tune Model Ready"
JOB_FAILED_DETAIL_TYPE = "Fine-tune Job Failed"

# The launcher hears only of new queued jobs: a job put back in the queue (throttling) waits
# for the sweep instead of waking the launcher at once.
LAUNCH_STREAM_FILTER = {
    "eventName": ["INSERT"],
    "dynamodb": {"NewImage": {"status": {"S": [JobStatus.QUEUED.value]}}},
}
