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

USER_KEY = "user_id"
JOB_KEY = "job_id"
MODEL_KEY = "model_id"

# Jobs table: one item per (user, job), plus one counter item holding the running training
# jobs. The counter's key holds a '/', which no part of an upload's key can.
CAPACITY_ITEM_KEY = {USER_KEY: "#queue/", JOB_KEY: "#capacity/"}
RUNNING_ATTRIBUTE = "running"
BY_STATUS_INDEX = "by-status"
BY_TRAINING_JOB_INDEX = "by-training-job"
CREATED_AT = "created_at"

# One DynamoDB transaction (at most 100 items) ends a batch: each task's job, each task's
# model record and the running-jobs slot.
MAX_BATCH_TASKS = 49
# SageMaker's own limits on a training job.
MAX_RUNTIME_LIMIT_S = 28 * 24 * 3600
MAX_WARM_POOL_KEEP_ALIVE_S = 3600

# Events the publisher puts on the bus for the application, and the one it takes from it.
MODEL_READY_DETAIL_TYPE = "Fine-tune Model Ready"
JOB_FAILED_DETAIL_TYPE = "Fine-tune Job Failed"
MODEL_REMOVAL_DETAIL_TYPE = "Fine-tune Model Removal Requested"
# Their ``source`` is this and the queue's training-job prefix, unless the props name one:
# queues sharing a bus then never take each other's removal requests.
EVENT_SOURCE_PREFIX = "inferfleet.finetune."

# What SageMaker says when a training job changes state; the publisher hears the ends.
STATE_CHANGE_SOURCE = "aws.sagemaker"
STATE_CHANGE_DETAIL_TYPE = "SageMaker Training Job State Change"
TERMINAL_TRAINING_STATUSES = ("Completed", "Failed", "Stopped")

# The launcher hears only of new queued jobs: a job put back in the queue (throttling) waits
# for the sweep instead of waking the launcher at once.
LAUNCH_STREAM_FILTER = {
    "eventName": ["INSERT"],
    "dynamodb": {"NewImage": {"status": {"S": [JobStatus.QUEUED.value]}}},
}
