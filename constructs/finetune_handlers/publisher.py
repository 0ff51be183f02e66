"""Publisher: ends jobs when their training job ends ("SageMaker Training Job State Change").

On success it copies each job's artifact to a key of its own version,
``{model_prefix}{user_id}/{model_id}/{job_id}.tar.gz``, and in one transaction marks the job
READY, switches the user's model record to that version and frees the slot; a job whose
artifact is missing, misplaced or replaced by a batch task's failure ends FAILED with the
reason in the same transaction. On failure or stop every job ends FAILED. Then it puts an event
on the bus for the application. With ``hosting: inference_components`` the user's adapter
component is created, or updated, to serve the version the record holds.

Every job reaches READY or FAILED and its slot is freed: nothing here raises on a training
job's outcome, only on AWS being unreachable (EventBridge then delivers again). EventBridge may
deliver the same change twice, and a retry redoes the copy, while the status change happens
once. The same schedule as the launcher's sweep runs :meth:`Publisher.reconcile`, which ends
jobs whose training job ended long ago without a change reaching this function.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from . import clients
from .jobs import Job, JobEnd, JobStore
from .layout import (
    adapter_component_name,
    batch_task_artifact_key,
    batch_task_failure_key,
    is_batch_name,
    model_artifact_key,
    target_model,
    training_output_prefix,
)
from .schema import (
    JOB_FAILED_DETAIL_TYPE,
    MODEL_READY_DETAIL_TYPE,
    MODEL_REMOVAL_DETAIL_TYPE,
    STATE_CHANGE_DETAIL_TYPE,
    STATE_CHANGE_SOURCE,
    TERMINAL_STATUSES,
    TERMINAL_TRAINING_STATUSES,
    JobStatus,
)
from .settings import Hosting, PublisherSettings, Tables
from .training import THROTTLING_CODES, describe_training_job

logger = Logger(service="inferfleet-finetune-publisher")

# Seconds kept back from the function timeout to finish the training job at hand.
TIME_RESERVE_S = 30.0
MAX_FAILURE_BYTES = 1024
_BRIEF_CHARS = 300


@dataclass(frozen=True)
class TrainingJobEnd:
    name: str
    status: str
    failure_reason: str | None
    model_artifact: str | None

    @classmethod
    def from_detail(cls, detail: object) -> TrainingJobEnd | None:
        """The state in an event's detail (or a DescribeTrainingJob answer); None if there is
        none to read."""
        if not isinstance(detail, dict):
            return None
        name, status = detail.get("TrainingJobName"), detail.get("TrainingJobStatus")
        if not isinstance(name, str) or not isinstance(status, str):
            return None
        artifacts = detail.get("ModelArtifacts")
        artifact = artifacts.get("S3ModelArtifacts") if isinstance(artifacts, dict) else None
        reason = detail.get("FailureReason")
        return cls(
            name=name,
            status=status,
            failure_reason=reason if isinstance(reason, str) and reason else None,
            model_artifact=artifact if isinstance(artifact, str) and artifact else None,
        )


def _split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _job_ref(job: Job) -> str:
    return f"{job.user_id}/{job.job_id}"


@dataclass
class ReconcileReport:
    checked: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Publisher:
    def __init__(
        self,
        settings: PublisherSettings,
        store: JobStore,
        *,
        s3: Any,
        events: Any,
        sagemaker: Any,
        time_left_s: Callable[[], float] = lambda: float("inf"),
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.s3 = s3
        self.events = events
        self.sagemaker = sagemaker
        self.time_left_s = time_left_s
        self.now = now

    # -- a training job ended ----------------------------------------------------------------

    def on_training_job_end(self, end: TrainingJobEnd) -> list[str]:
        """Returns ``user/job`` of the jobs this call ended (none for a repeated event)."""
        if end.status not in TERMINAL_TRAINING_STATUSES:
            return []
        jobs = self.store.for_training_job(end.name)
        open_jobs = [job for job in jobs if job.status not in TERMINAL_STATUSES]
        if not open_jobs:
            logger.info("no open jobs for training job", training_job=end.name)
            self._sync_adapters([job for job in jobs if job.status is JobStatus.READY])
            return []
        if end.status == "Completed":
            ends = [self._publish(job, end) for job in open_jobs]
        else:
            reason = end.failure_reason or f"training job {end.status.lower()}"
            ends = [JobEnd.failed(job, reason) for job in open_jobs]
        if not self.store.finish(end.name, ends):
            return []
        ready = [result.job for result in ends if result.status is JobStatus.READY]
        self._sync_adapters(ready)
        self._announce(ends)
        logger.info(
            "training job ended",
            training_job=end.name,
            ready=[_job_ref(job) for job in ready],
            failed=[_job_ref(result.job) for result in ends if result.job not in ready],
        )
        return [_job_ref(result.job) for result in ends]

    def _publish(self, job: Job, end: TrainingJobEnd) -> JobEnd:
        """READY with the job's own version in the model bucket, or FAILED saying why not."""
        source = self._artifact_source(job, end)
        if isinstance(source, str):
            return JobEnd.failed(job, source)
        version = target_model(job.user_id, job.model_id, job.job_id)
        key = model_artifact_key(self.settings.model_prefix, job.user_id, job.model_id, job.job_id)
        bucket, source_key = source
        try:
            # Managed copy: multipart above 5 GB, which large models reach.
            self.s3.copy(
                CopySource={"Bucket": bucket, "Key": source_key},
                Bucket=self.settings.model_bucket,
                Key=key,
            )
        except ClientError as error:
            if not clients.is_missing_object(error):
                raise
            return JobEnd.failed(
                job, f"training job {end.name} completed, but s3://{bucket}/{source_key} is missing"
            )
        return JobEnd.ready(job, f"s3://{self.settings.model_bucket}/{key}", version)

    def _artifact_source(self, job: Job, end: TrainingJobEnd) -> tuple[str, str] | str:
        """The artifact's bucket and key, or why the job has none."""
        data_bucket = self.settings.data_bucket
        if is_batch_name(self.settings.training_job_prefix, end.name):
            key = batch_task_artifact_key(end.name, job.user_id, job.job_id)
            if self._exists(data_bucket, key):
                return data_bucket, key
            failure = self._read_failure(
                data_bucket, batch_task_failure_key(end.name, job.user_id, job.job_id)
            )
            return failure or f"batch task of training job {end.name} left no artifact"
        if end.model_artifact is None:
            return f"training job {end.name} completed without a model artifact"
        bucket, key = _split_s3_uri(end.model_artifact)
        if bucket != data_bucket or not key.startswith(training_output_prefix(end.name)):
            return (
                f"training job {end.name} reported its artifact at {end.model_artifact}, "
                "outside this queue's training output"
            )
        return bucket, key

    def _exists(self, bucket: str, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if clients.is_missing_object(error):
                return False
            raise
        return True

    def _read_failure(self, bucket: str, key: str) -> str | None:
        try:
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        except ClientError as error:
            if clients.is_missing_object(error):
                return None
            raise
        with body:
            text = body.read(MAX_FAILURE_BYTES).decode("utf-8", "replace").strip()
        return text or None

    # -- the application's events ------------------------------------------------------------

    def _describe(self, job: Job) -> dict[str, str]:
        return {"job_id": job.job_id, "user_id": job.user_id, "model_id": job.model_id}

    def _announce(self, ends: list[JobEnd]) -> None:
        entries = []
        for result in ends:
            if result.status is JobStatus.READY:
                detail = {
                    **self._describe(result.job),
                    "artifact_url": result.artifact_url,
                    "target_model": result.target_model,
                }
                entries.append((MODEL_READY_DETAIL_TYPE, detail))
            else:
                entries.append(
                    (JOB_FAILED_DETAIL_TYPE, {**self._describe(result.job), "error": result.error})
                )
        self._emit(entries)

    def _emit(self, details: list[tuple[str, dict[str, Any]]]) -> None:
        entries = [
            {
                "Source": self.settings.event_source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": self.settings.event_bus,
            }
            for detail_type, detail in details
        ]
        for start in range(0, len(entries), 10):
            response = self.events.put_events(Entries=entries[start : start + 10])
            if response.get("FailedEntryCount"):
                # The job state is already final; the application can re-read it from the table.
                logger.error("some events were not put", failed=response["FailedEntryCount"])

    # -- adapters on inference components ----------------------------------------------------

    def _sync_adapters(self, ready: list[Job]) -> None:
        if self.settings.hosting is not Hosting.INFERENCE_COMPONENTS:
            return
        for model in sorted({(job.user_id, job.model_id) for job in ready}):
            self.sync_adapter(*model)

    def sync_adapter(self, user_id: str, model_id: str) -> None:
        """Make the user's adapter component serve the version the model record holds."""
        record = self.store.model(user_id, model_id)
        if record is None or record.get("component_version") == record["version"]:
            return
        name = adapter_component_name(self.settings.training_job_prefix, user_id, model_id)
        specification = {
            "BaseInferenceComponentName": self.settings.base_component_name,
            "Container": {"ArtifactUrl": record["artifact_url"]},
        }
        if self._component(name) is None:
            self.sagemaker.create_inference_component(
                InferenceComponentName=name,
                EndpointName=self.settings.endpoint_name,
                Specification=specification,
                Tags=[
                    {"Key": "inferfleet:user-id", "Value": user_id},
                    {"Key": "inferfleet:model-id", "Value": model_id},
                ],
            )
        else:
            self.sagemaker.update_inference_component(
                InferenceComponentName=name, Specification=specification
            )
        self.store.mark_component(user_id, model_id, version=record["version"], component=name)
        logger.info("adapter component serves version", component=name, version=record["version"])

    def _component(self, name: str) -> dict[str, Any] | None:
        try:
            return self.sagemaker.describe_inference_component(InferenceComponentName=name)
        except ClientError as error:
            message = error.response["Error"].get("Message", "")
            if error.response["Error"]["Code"] == "ValidationException" and (
                "Could not find" in message
            ):
                return None
            raise

    def remove_model(self, user_id: str, model_id: str) -> bool:
        """Take a user's model out of service: its adapter component, then its record."""
        record = self.store.model(user_id, model_id)
        if record is None:
            return False
        if self.settings.hosting is Hosting.INFERENCE_COMPONENTS:
            name = adapter_component_name(self.settings.training_job_prefix, user_id, model_id)
            if self._component(name) is not None:
                self.sagemaker.delete_inference_component(InferenceComponentName=name)
        return self.store.remove_model(user_id, model_id, version=record["version"])

    # -- the sweep's repair of lost state changes --------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """End jobs whose training job ended ``reconcile_after_s`` ago or more."""
        report = ReconcileReport()
        names = sorted(
            {job.training_job_name for job in self.store.with_status(JobStatus.TRAINING)} - {None}
        )
        for name in names:
            if self.time_left_s() < TIME_RESERVE_S:
                break
            try:
                described = describe_training_job(self.sagemaker, name)
            except ClientError as error:
                if error.response["Error"]["Code"] in THROTTLING_CODES:
                    break  # the next sweep looks again
                raise
            report.checked.append(name)
            if described is None:
                end = TrainingJobEnd(name, "Failed", f"training job {name} does not exist", None)
            else:
                end = TrainingJobEnd.from_detail(described)
                if end is None or not self._ended_long_ago(described):
                    continue
            report.ended.extend(self.on_training_job_end(end))
        return report

    def _ended_long_ago(self, described: dict[str, Any]) -> bool:
        if described.get("TrainingJobStatus") not in TERMINAL_TRAINING_STATUSES:
            return False
        ended_at = described.get("TrainingEndTime") or described.get("LastModifiedTime")
        if not isinstance(ended_at, datetime):
            return True
        return self.now() - ended_at.timestamp() >= self.settings.reconcile_after_s


def training_job_end(event: object, training_job_prefix: str) -> TrainingJobEnd | None:
    """The training job end in a state-change event of this queue's jobs, or None."""
    if not isinstance(event, dict) or event.get("source") != STATE_CHANGE_SOURCE:
        return None
    if event.get("detail-type") != STATE_CHANGE_DETAIL_TYPE:
        return None
    end = TrainingJobEnd.from_detail(event.get("detail"))
    if end is None or not end.name.startswith(f"{training_job_prefix}-"):
        return None
    return end


def removal_request(event: object, event_source: str) -> tuple[str, str] | None:
    """``(user_id, model_id)`` of a removal the application asked for on the bus, or None."""
    if not isinstance(event, dict) or event.get("source") != event_source:
        return None
    detail = event.get("detail")
    if event.get("detail-type") != MODEL_REMOVAL_DETAIL_TYPE or not isinstance(detail, dict):
        return None
    user_id, model_id = detail.get("user_id"), detail.get("model_id")
    if not isinstance(user_id, str) or not isinstance(model_id, str):
        return None
    return user_id, model_id


def build_publisher(context: LambdaContext) -> Publisher:
    tables = Tables.from_env()
    return Publisher(
        PublisherSettings.from_env(),
        JobStore(clients.dynamodb(), tables.jobs, tables.models),
        s3=clients.s3(),
        events=clients.events(),
        sagemaker=clients.sagemaker(),
        time_left_s=lambda: context.get_remaining_time_in_millis() / 1000,
    )


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    publisher = build_publisher(context)
    if isinstance(event, dict) and event.get("reconcile") is True:
        return publisher.reconcile().as_dict()
    end = training_job_end(event, publisher.settings.training_job_prefix)
    if end is not None:
        return {"ended": publisher.on_training_job_end(end)}
    removal = removal_request(event, publisher.settings.event_source)
    if removal is not None:
        removed = publisher.remove_model(*removal)
        return {"removed": [f"{removal[0]}/{removal[1]}"] if removed else []}
    logger.warning("not an event for this publisher, skipped", event=repr(event)[:_BRIEF_CHARS])
    return {"ended": [], "skipped": 1}
