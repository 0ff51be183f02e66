"""The job queue and the user -> models table in DynamoDB.

Every state change is a conditional write, so duplicates and retries cannot move a job twice:
registration puts only if the (user, job) pair is new, a launch claims a job only while it is
QUEUED (together with a slot of the running-jobs counter, in one transaction), and a training
job ends its jobs, switches their users' model records to the new versions and frees its slot
once, in one transaction: a reader sees a model's old version or its new one, never a job
READY without its model or a model without its job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from .schema import (
    BY_STATUS_INDEX,
    BY_TRAINING_JOB_INDEX,
    CAPACITY_ITEM_KEY,
    JOB_KEY,
    MODEL_KEY,
    RUNNING_ATTRIBUTE,
    USER_KEY,
    JobStatus,
)

MAX_ERROR_CHARS = 1024


# The tables hold strings, whole numbers and string maps (a job's hyperparameters), spelt as
# DynamoDB attribute values here as in the writes below. boto3's TypeSerializer would do the
# same, at the price of importing boto3 (s3transfer, resources) into the CLI's reads.
def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"N": str(value)}
    if isinstance(value, Mapping):
        return {"M": {key: _attribute(item) for key, item in value.items()}}
    raise TypeError(f"the job tables hold no {type(value).__name__}: {value!r}")


def _python(attribute: Mapping[str, Any]) -> Any:
    """An attribute value as Python; a number as a Decimal, as boto3 reads it."""
    ((kind, data),) = attribute.items()
    if kind == "S":
        return data
    if kind == "N":
        return Decimal(data)
    if kind == "M":
        return {key: _python(item) for key, item in data.items()}
    raise ValueError(f"the job tables hold no attribute of type {kind}")


def _record(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _python(value) for key, value in item.items()}


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Job:
    user_id: str
    job_id: str
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
    target_model: str | None = None
    error: str | None = None
    updated_at: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.user_id, self.job_id

    def to_item(self) -> dict[str, Any]:
        values = {key: value for key, value in self.__dict__.items() if value is not None}
        values["status"] = str(self.status)
        return {key: _attribute(value) for key, value in values.items()}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        values = _record(item)
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


@dataclass(frozen=True)
class JobEnd:
    """How one job of a finished training job ends: READY with its version, or FAILED."""

    job: Job
    status: JobStatus
    error: str | None = None
    artifact_url: str | None = None
    target_model: str | None = None

    @classmethod
    def failed(cls, job: Job, error: str) -> JobEnd:
        return cls(job, JobStatus.FAILED, error=error[:MAX_ERROR_CHARS])

    @classmethod
    def ready(cls, job: Job, artifact_url: str, target_model: str) -> JobEnd:
        return cls(job, JobStatus.READY, artifact_url=artifact_url, target_model=target_model)


class ClaimOutcome(Enum):
    CLAIMED = "claimed"
    LOST = "lost"  # another launch got there first, or the job is no longer queued
    AT_CAPACITY = "at_capacity"


def _key(user_id: str, job_id: str) -> dict[str, Any]:
    return {USER_KEY: {"S": user_id}, JOB_KEY: {"S": job_id}}


_CAPACITY_KEY = _key(CAPACITY_ITEM_KEY[USER_KEY], CAPACITY_ITEM_KEY[JOB_KEY])


def _reasons(error: ClientError) -> list[str]:
    return [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]


def _is_cancelled(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "TransactionCanceledException"


def _is_condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _set(fields: dict[str, dict[str, Any]]) -> tuple[str, dict[str, str], dict[str, Any]]:
    names = {f"#f{index}": name for index, name in enumerate(fields)}
    values = {f":v{index}": value for index, value in enumerate(fields.values())}
    update = "SET " + ", ".join(f"#f{index} = :v{index}" for index in range(len(fields)))
    return update, names, values


class JobStore:
    def __init__(self, dynamodb: Any, jobs_table: str, models_table: str) -> None:
        self._db = dynamodb
        self.jobs_table = jobs_table
        self.models_table = models_table

    # -- reads -----------------------------------------------------------------------------

    def get(self, user_id: str, job_id: str) -> Job | None:
        response = self._db.get_item(
            TableName=self.jobs_table, Key=_key(user_id, job_id), ConsistentRead=True
        )
        item = response.get("Item")
        return Job.from_item(item) if item else None

    def running_count(self) -> int:
        response = self._db.get_item(
            TableName=self.jobs_table, Key=_CAPACITY_KEY, ConsistentRead=True
        )
        return int(response.get("Item", {}).get(RUNNING_ATTRIBUTE, {}).get("N", "0"))

    def _query(
        self, key: str, value: str, *, index: str | None = None, table: str | None = None
    ) -> Iterator[dict[str, Any]]:
        extra = {"IndexName": index} if index else {}
        pages = self._db.get_paginator("query").paginate(
            TableName=table or self.jobs_table,
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
        for item in self._query("status", str(status), index=BY_STATUS_INDEX):
            jobs.append(Job.from_item(item))
            if limit is not None and len(jobs) >= limit:
                break
        return jobs

    def count_with_status(self, status: JobStatus) -> int:
        pages = self._db.get_paginator("query").paginate(
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
            Job.from_item(item).key
            for item in self._query(
                "training_job_name", training_job_name, index=BY_TRAINING_JOB_INDEX
            )
        ]
        jobs = [job for job in (self.get(*key) for key in keys) if job is not None]
        jobs = [job for job in jobs if job.training_job_name == training_job_name]
        return sorted(jobs, key=lambda job: job.task_index or 0)

    def for_user(self, user_id: str) -> list[Job]:
        return [Job.from_item(item) for item in self._query(USER_KEY, user_id)]

    def models_of(self, user_id: str) -> list[dict[str, Any]]:
        return [_record(item) for item in self._query(USER_KEY, user_id, table=self.models_table)]

    def model(self, user_id: str, model_id: str) -> dict[str, Any] | None:
        item = self._db.get_item(
            TableName=self.models_table,
            Key={USER_KEY: {"S": user_id}, MODEL_KEY: {"S": model_id}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return _record(item)

    # -- writes ----------------------------------------------------------------------------

    def register(self, job: Job) -> bool:
        """Put a new job; False when this user's job id is already known (a duplicate event)."""
        try:
            self._db.put_item(
                TableName=self.jobs_table,
                Item=job.to_item(),
                ConditionExpression="attribute_not_exists(#job)",
                ExpressionAttributeNames={"#job": JOB_KEY},
            )
        except ClientError as error:
            if _is_condition_failed(error):
                return False
            raise
        return True

    def reject(self, job: Job, error: str) -> bool:
        """A queued job that may not run as it is: FAILED with the reason, no slot taken."""
        update, names, values = _set(
            {
                "status": {"S": JobStatus.FAILED},
                "error": {"S": error[:MAX_ERROR_CHARS]},
                "updated_at": {"S": utc_now_iso()},
            }
        )
        try:
            self._db.update_item(
                TableName=self.jobs_table,
                Key=_key(*job.key),
                UpdateExpression=update,
                ConditionExpression="#f0 = :queued",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**values, ":queued": {"S": JobStatus.QUEUED}},
            )
        except ClientError as failure:
            if _is_condition_failed(failure):
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
                    "Key": _key(*job.key),
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
                    "Key": _CAPACITY_KEY,
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
                Key=_key(*job.key),
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
            if _is_condition_failed(error):
                return False
            raise
        return True

    def _job_update(
        self,
        job: Job,
        training_job_name: str,
        *,
        from_statuses: Sequence[JobStatus],
        fields: dict[str, dict[str, Any]],
        remove: Sequence[str] = ("lease_until",),
        undo_attempt: bool = False,
    ) -> dict[str, Any]:
        update, names, values = _set({**fields, "updated_at": {"S": utc_now_iso()}})
        if remove:
            update += " REMOVE " + ", ".join(remove)
        if undo_attempt:
            update += " ADD attempts :minus_one"
            values[":minus_one"] = {"N": "-1"}
        allowed = {f":from{index}": {"S": str(state)} for index, state in enumerate(from_statuses)}
        names["#status"] = "status"
        return {
            "Update": {
                "TableName": self.jobs_table,
                "Key": _key(*job.key),
                "UpdateExpression": update,
                "ConditionExpression": (
                    f"#status IN ({', '.join(allowed)}) AND training_job_name = :training_job"
                ),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    **values,
                    **allowed,
                    ":training_job": {"S": training_job_name},
                },
            }
        }

    def _free_slot(self) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.jobs_table,
                "Key": _CAPACITY_KEY,
                "UpdateExpression": "ADD #r :minus_one",
                "ConditionExpression": "#r > :zero",
                "ExpressionAttributeNames": {"#r": RUNNING_ATTRIBUTE},
                "ExpressionAttributeValues": {":minus_one": {"N": "-1"}, ":zero": {"N": "0"}},
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        """False when a condition failed: the jobs were already moved on."""
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as error:
            if _is_cancelled(error) and "ConditionalCheckFailed" in _reasons(error):
                return False
            raise
        return True

    def mark_training(self, jobs: Sequence[Job], training_job_name: str) -> bool:
        return self._transact(
            [
                self._job_update(
                    job,
                    training_job_name,
                    from_statuses=[JobStatus.LAUNCHING],
                    fields={"status": {"S": JobStatus.TRAINING}},
                )
                for job in jobs
            ]
        )

    def release(self, jobs: Sequence[Job], training_job_name: str) -> bool:
        """Give back jobs whose launch SageMaker refused for now (throttling): queued again."""
        items = [
            self._job_update(
                job,
                training_job_name,
                from_statuses=[JobStatus.LAUNCHING],
                fields={"status": {"S": JobStatus.QUEUED}},
                remove=("lease_until", "training_job_name", "task_index"),
                undo_attempt=True,
            )
            for job in jobs
        ]
        return self._transact([*items, self._free_slot()])

    def fail(self, jobs: Sequence[Job], training_job_name: str, error: str) -> bool:
        return self.finish(training_job_name, [JobEnd.failed(job, error) for job in jobs])

    def finish(self, training_job_name: str, ends: Sequence[JobEnd]) -> bool:
        """End a training job's jobs and free its slot exactly once (False if already ended).

        READY jobs switch their user's model record to their version in the same transaction,
        unless the record already holds a newer version (a later job of the same model that
        finished first): that job is READY, and the record keeps the newer version. A counter
        already at zero (edited by hand) does not keep the jobs from ending.
        """
        job_items = [self._end_item(end, training_job_name) for end in ends]
        model_items = self._model_switches([end for end in ends if end.status is JobStatus.READY])
        free_slot = True
        while True:
            slot = [self._free_slot()] if free_slot else []
            try:
                self._db.transact_write_items(TransactItems=[*job_items, *model_items, *slot])
            except ClientError as error:
                if not _is_cancelled(error):
                    raise
                failed = [code == "ConditionalCheckFailed" for code in _reasons(error)]
                if any(failed[: len(job_items)]):
                    return False
                superseded = failed[len(job_items) : len(job_items) + len(model_items)]
                slot_at_zero = free_slot and bool(failed) and failed[-1]
                if not any(superseded) and not slot_at_zero:
                    raise
                model_items = [
                    item for item, gone in zip(model_items, superseded, strict=True) if not gone
                ]
                free_slot = free_slot and not slot_at_zero
                continue
            return True

    def _end_item(self, end: JobEnd, training_job_name: str) -> dict[str, Any]:
        fields = {"status": {"S": str(end.status)}}
        for name in ("error", "artifact_url", "target_model"):
            value = getattr(end, name)
            if value is not None:
                fields[name] = {"S": value}
        return self._job_update(
            end.job,
            training_job_name,
            from_statuses=[JobStatus.LAUNCHING, JobStatus.TRAINING],
            fields=fields,
        )

    def _model_switches(self, ready: Sequence[JobEnd]) -> list[dict[str, Any]]:
        """One conditional switch per (user, model): the newest job of it in this set wins."""
        newest: dict[tuple[str, str], JobEnd] = {}
        for end in ready:
            model = (end.job.user_id, end.job.model_id)
            if model not in newest or newest[model].job.created_at < end.job.created_at:
                newest[model] = end
        items = []
        for end in newest.values():
            job = end.job
            update, names, values = _set(
                {
                    "version": {"S": job.job_id},
                    "job_id": {"S": job.job_id},
                    "version_created_at": {"S": job.created_at},
                    "artifact_url": {"S": end.artifact_url},
                    "target_model": {"S": end.target_model},
                    "status": {"S": JobStatus.READY},
                    "updated_at": {"S": utc_now_iso()},
                }
            )
            # Placeholders follow the order of the fields: 0 is the version, 2 its job's age.
            condition = "attribute_not_exists(#f0) OR #f2 < :v2 OR #f0 = :v0"
            items.append(
                {
                    "Update": {
                        "TableName": self.models_table,
                        "Key": {USER_KEY: {"S": job.user_id}, MODEL_KEY: {"S": job.model_id}},
                        "UpdateExpression": update,
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        return items

    def mark_component(self, user_id: str, model_id: str, *, version: str, component: str) -> bool:
        """Record that the model's adapter component serves ``version``; False if the record
        moved to another version meanwhile."""
        update, names, values = _set(
            {"component_version": {"S": version}, "inference_component": {"S": component}}
        )
        try:
            self._db.update_item(
                TableName=self.models_table,
                Key={USER_KEY: {"S": user_id}, MODEL_KEY: {"S": model_id}},
                UpdateExpression=update,
                ConditionExpression="#version = :version",
                ExpressionAttributeNames={**names, "#version": "version"},
                ExpressionAttributeValues={**values, ":version": {"S": version}},
            )
        except ClientError as error:
            if _is_condition_failed(error):
                return False
            raise
        return True

    def remove_model(self, user_id: str, model_id: str, *, version: str) -> bool:
        """Delete the record if it still holds ``version``; False if it moved on or is gone."""
        try:
            self._db.delete_item(
                TableName=self.models_table,
                Key={USER_KEY: {"S": user_id}, MODEL_KEY: {"S": model_id}},
                ConditionExpression="#version = :version",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":version": {"S": version}},
            )
        except ClientError as error:
            if _is_condition_failed(error):
                return False
            raise
        return True
