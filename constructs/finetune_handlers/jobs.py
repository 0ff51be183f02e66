"""The job queue and the user -> models table in DynamoDB.

Every state change is a conditional write, so duplicates and retries cannot move a job twice:
registration puts only if the job id is new, a launch claims a job only while it is QUEUED
(together with a slot of the running-jobs counter, in one transaction), and a training job
ends its jobs and frees its slot once, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from .schema import (
    BY_STATUS_INDEX,
    BY_TRAINING_JOB_INDEX,
    BY_USER_INDEX,
    CAPACITY_ITEM_KEY,
    JOB_KEY,
    RUNNING_ATTRIBUTE,
    JobStatus,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Job:
    job_id: str
    user_id: str
    model_id: str
    status: JobStatus
    data_uri: str
    created_at: str
    hyperparameters: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    training_job_name: str | None = None
    task_index: int | None = None
    lease_until: int | None = None
    artifact_url: str | None = None
    error: str | None = None
    updated_at: str | None = None

    def to_item(self) -> dict[str, Any]:
        values = {key: value for key, value in self.__dict__.items() if value is not None}
        values["status"] = str(self.status)
        return {key: _serializer.serialize(value) for key, value in values.items()}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        values = {key: _deserializer.deserialize(value) for key, value in item.items()}
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        for name, value in known.items():
            if isinstance(value, Decimal):
                known[name] = int(value)
        known["status"] = JobStatus(known["status"])
        known["hyperparameters"] = dict(known.get("hyperparameters", {}))
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return {
            key: str(value) if isinstance(value, Enum) else value
            for key, value in self.__dict__.items()
        }


class ClaimOutcome(Enum):
    CLAIMED = "claimed"
    LOST = "lost"  # another launch got there first, or the job is no longer queued
    AT_CAPACITY = "at_capacity"


def _key(job_id: str) -> dict[str, Any]:
    return {JOB_KEY: {"S": job_id}}


def _reasons(error: ClientError) -> list[str]:
    return [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]


def _is_cancelled(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "TransactionCanceledException"


class JobStore:
    def __init__(self, dynamodb: Any, jobs_table: str, models_table: str) -> None:
        self._db = dynamodb
        self.jobs_table = jobs_table
        self.models_table = models_table

    # -- reads -----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        response = self._db.get_item(
            TableName=self.jobs_table, Key=_key(job_id), ConsistentRead=True
        )
        item = response.get("Item")
        return Job.from_item(item) if item else None

    def running_count(self) -> int:
        response = self._db.get_item(
            TableName=self.jobs_table, Key=_key(CAPACITY_ITEM_KEY), ConsistentRead=True
        )
        return int(response.get("Item", {}).get(RUNNING_ATTRIBUTE, {}).get("N", "0"))

    def _query(self, index: str, key: str, value: str, **extra: Any) -> Iterator[dict[str, Any]]:
        paginator = self._db.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.jobs_table,
            IndexName=index,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": key},
            ExpressionAttributeValues={":v": {"S": value}},
            **extra,
        )
        for page in pages:
            yield from page.get("Items", [])

    def with_status(self, status: JobStatus, limit: int | None = None) -> list[Job]:
        """Oldest first; read from an index, so a job may already have moved on."""
        jobs = []
        for item in self._query(BY_STATUS_INDEX, "status", str(status)):
            jobs.append(Job.from_item(item))
            if limit is not None and len(jobs) >= limit:
                break
        return jobs

    def count_with_status(self, status: JobStatus) -> int:
        paginator = self._db.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.jobs_table,
            IndexName=BY_STATUS_INDEX,
            KeyConditionExpression="#k = :v",
            ExpressionAttributeNames={"#k": "status"},
            ExpressionAttributeValues={":v": {"S": str(status)}},
            Select="COUNT",
        )
        return sum(page["Count"] for page in pages)

    def for_training_job(self, training_job_name: str) -> list[Job]:
        """The jobs a training job runs (one, or a batch's tasks in order), read consistently."""
        keys = [
            Job.from_item(item).job_id
            for item in self._query(BY_TRAINING_JOB_INDEX, "training_job_name", training_job_name)
        ]
        jobs = [job for job in (self.get(job_id) for job_id in keys) if job is not None]
        jobs = [job for job in jobs if job.training_job_name == training_job_name]
        return sorted(jobs, key=lambda job: job.task_index or 0)

    def for_user(self, user_id: str) -> list[Job]:
        return [Job.from_item(item) for item in self._query(BY_USER_INDEX, "user_id", user_id)]

    def models_of(self, user_id: str) -> list[dict[str, Any]]:
        paginator = self._db.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.models_table,
            KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )
        return [
            {key: _deserializer.deserialize(value) for key, value in item.items()}
            for page in pages
            for item in page.get("Items", [])
        ]

    # -- writes ----------------------------------------------------------------------------

    def register(self, job: Job) -> bool:
        """Put a new job; False when the job id is already known (a duplicate upload event)."""
        try:
            self._db.put_item(
                TableName=self.jobs_table,
                Item=job.to_item(),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim(
        self,
        jobs: Sequence[Job],
        training_job_name: str,
        *,
        lease_until: int,
        max_running: int,
    ) -> ClaimOutcome:
        """Move queued jobs to LAUNCHING under one training job name and take one slot."""
        now = utc_now_iso()
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.jobs_table,
                    "Key": _key(job.job_id),
                    "UpdateExpression": (
                        "SET #s = :launching, training_job_name = :name, lease_until = :lease,"
                        " task_index = :index, updated_at = :now ADD attempts :one"
                    ),
                    "ConditionExpression": "#s = :queued",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":launching": {"S": JobStatus.LAUNCHING},
                        ":queued": {"S": JobStatus.QUEUED},
                        ":name": {"S": training_job_name},
                        ":lease": {"N": str(lease_until)},
                        ":index": {"N": str(index)},
                        ":now": {"S": now},
                        ":one": {"N": "1"},
                    },
                }
            }
            for index, job in enumerate(jobs)
        ]
        items.append(
            {
                "Update": {
                    "TableName": self.jobs_table,
                    "Key": _key(CAPACITY_ITEM_KEY),
                    "UpdateExpression": "ADD #r :one",
                    "ConditionExpression": "attribute_not_exists(#r) OR #r < :max",
                    "ExpressionAttributeNames": {"#r": RUNNING_ATTRIBUTE},
                    "ExpressionAttributeValues": {
                        ":one": {"N": "1"},
                        ":max": {"N": str(max_running)},
                    },
                }
            }
        )
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as error:
            if not _is_cancelled(error):
                raise
            reasons = _reasons(error)
            if any(code == "ConditionalCheckFailed" for code in reasons[:-1]):
                return ClaimOutcome.LOST
            if reasons and reasons[-1] == "ConditionalCheckFailed":
                return ClaimOutcome.AT_CAPACITY
            raise
        return ClaimOutcome.CLAIMED

    def renew_lease(self, job: Job, *, lease_until: int) -> bool:
        """Take over a launch whose lease ran out; False if someone else moved it on."""
        try:
            self._db.update_item(
                TableName=self.jobs_table,
                Key=_key(job.job_id),
                UpdateExpression="SET lease_until = :lease, updated_at = :now ADD attempts :one",
                ConditionExpression="#s = :launching AND lease_until = :old",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":lease": {"N": str(lease_until)},
                    ":old": {"N": str(job.lease_until)},
                    ":launching": {"S": JobStatus.LAUNCHING},
                    ":now": {"S": utc_now_iso()},
                    ":one": {"N": "1"},
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _transition(
        self,
        jobs: Sequence[Job],
        training_job_name: str,
        *,
        from_statuses: Sequence[JobStatus],
        to_status: JobStatus,
        free_slot: bool,
        extra: dict[str, dict[str, Any]] | None = None,
        per_job: dict[str, dict[str, dict[str, Any]]] | None = None,
        remove: Sequence[str] = ("lease_until",),
        undo_attempt: bool = False,
    ) -> bool:
        """All jobs of one training job move together, or none does (False)."""
        allowed = {
            f":from{index}": {"S": str(status)} for index, status in enumerate(from_statuses)
        }
        items: list[dict[str, Any]] = []
        for job in jobs:
            fields = {"status": {"S": str(to_status)}, "updated_at": {"S": utc_now_iso()}}
            fields.update(extra or {})
            fields.update((per_job or {}).get(job.job_id, {}))
            names = {f"#f{index}": name for index, name in enumerate(fields)}
            values = {f":v{index}": value for index, value in enumerate(fields.values())}
            update = "SET " + ", ".join(f"#f{index} = :v{index}" for index in range(len(fields)))
            if remove:
                update += " REMOVE " + ", ".join(remove)
            if undo_attempt:
                update += " ADD attempts :minus_one"
                values[":minus_one"] = {"N": "-1"}
            condition = f"#f0 IN ({', '.join(allowed)}) AND training_job_name = :training_job"
            items.append(
                {
                    "Update": {
                        "TableName": self.jobs_table,
                        "Key": _key(job.job_id),
                        "UpdateExpression": update,
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": {
                            **values,
                            **allowed,
                            ":training_job": {"S": training_job_name},
                        },
                    }
                }
            )
        if free_slot:
            items.append(
                {
                    "Update": {
                        "TableName": self.jobs_table,
                        "Key": _key(CAPACITY_ITEM_KEY),
                        "UpdateExpression": "ADD #r :minus_one",
                        "ConditionExpression": "#r > :zero",
                        "ExpressionAttributeNames": {"#r": RUNNING_ATTRIBUTE},
                        "ExpressionAttributeValues": {
                            ":minus_one": {"N": "-1"},
                            ":zero": {"N": "0"},
                        },
                    }
                }
            )
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _is_cancelled(error) and "ConditionalCheckFailed" in _reasons(error):
                return False
            raise
        return True

    def mark_training(self, jobs: Sequence[Job], training_job_name: str) -> bool:
        return self._transition(
            jobs,
            training_job_name,
            from_statuses=[JobStatus.LAUNCHING],
            to_status=JobStatus.TRAINING,
            free_slot=False,
        )

    def release(self, jobs: Sequence[Job], training_job_name: str) -> bool:
        """Give back jobs whose launch SageMaker refused for now (throttling): queued again."""
        return self._transition(
            jobs,
            training_job_name,
            from_statuses=[JobStatus.LAUNCHING],
            to_status=JobStatus.QUEUED,
            free_slot=True,
            remove=("lease_until", "training_job_name", "task_index"),
            undo_attempt=True,
        )

    def finish(
        self,
        jobs: Sequence[Job],
        training_job_name: str,
        *,
        status: JobStatus,
        error: str | None = None,
        artifact_urls: dict[str, str] | None = None,
    ) -> bool:
        """End a training job's jobs (READY or FAILED) and free its slot, exactly once."""
        extra: dict[str, dict[str, Any]] = {}
        if error is not None:
            extra["error"] = {"S": error[:1024]}
        per_job = {
            job_id: {"artifact_url": {"S": url}} for job_id, url in (artifact_urls or {}).items()
        }
        return self._transition(
            jobs,
            training_job_name,
            from_statuses=[JobStatus.LAUNCHING, JobStatus.TRAINING],
            to_status=status,
            free_slot=True,
            extra=extra,
            per_job=per_job,
        )

    def record_model(self, job: Job, artifact_url: str) -> None:
        """Idempotent: the same job always writes the same item."""
        item = {
            "user_id": job.user_id,
            "model_id": job.model_id,
            "artifact_url": artifact_url,
            "status": str(JobStatus.READY),
            "job_id": job.job_id,
            "updated_at": utc_now_iso(),
        }
        self._db.put_item(
            TableName=self.models_table,
            Item={key: _serializer.serialize(value) for key, value in item.items()},
        )
