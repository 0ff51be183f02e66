"""Publisher: ends jobs when their training job ends ("SageMaker Training Job State Change").

On success it copies each job's artifact to ``{model_prefix}{user_id}/{model_id}.tar.gz``,
where the multi-model endpoint loads it by TargetModel, records the model for the user and
marks the job READY; on failure or stop it marks the job FAILED with the reason. Then it puts
an event on the bus for the application. Every step repeats safely: EventBridge may deliver
the same state change twice, and a retry after a crash redoes the copy and the record, while
the status change and the freed slot happen once (one conditional transaction).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from . import clients
from .jobs import Job, JobStore
from .layout import batch_task_artifact_key, is_batch_name, model_artifact_key, target_model
from .schema import (
    JOB_FAILED_DETAIL_TYPE,
    MODEL_READY_DETAIL_TYPE,
    TERMINAL_STATUSES,
    JobStatus,
)
from .settings import PublisherSettings, Tables

logger = Logger(service="inferfleet-finetune-publisher")

TERMINAL_TRAINING_STATUSES = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class TrainingJobEnd:
    name: str
    status: str
    failure_reason: str | None
    model_artifact: str | None

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> TrainingJobEnd:
        return cls(
            name=detail["TrainingJobName"],
            status=detail["TrainingJobStatus"],
            failure_reason=detail.get("FailureReason"),
            model_artifact=(detail.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        )


def _split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class Publisher:
    def __init__(
        self, settings: PublisherSettings, store: JobStore, *, s3: Any, events: Any
    ) -> None:
        self.settings = settings
        self.store = store
        self.s3 = s3
        self.events = events

    def on_training_job_end(self, end: TrainingJobEnd) -> list[str]:
        """Returns the ids of the jobs this call ended (none for a repeated event)."""
        if end.status not in TERMINAL_TRAINING_STATUSES:
            return []
        jobs = [
            job
            for job in self.store.for_training_job(end.name)
            if job.status not in TERMINAL_STATUSES
        ]
        if not jobs:
            logger.info("no open jobs for training job", training_job=end.name)
            return []
        if end.status == "Completed":
            return self._publish(jobs, end)
        reason = end.failure_reason or f"training job {end.status.lower()}"
        if not self.store.finish(jobs, end.name, status=JobStatus.FAILED, error=reason):
            return []
        self._emit(
            JOB_FAILED_DETAIL_TYPE, [{**self._describe(job), "error": reason} for job in jobs]
        )
        return [job.job_id for job in jobs]

    def _artifact_source(self, job: Job, end: TrainingJobEnd) -> tuple[str, str]:
        if is_batch_name(self.settings.training_job_prefix, end.name):
            return self.settings.data_bucket, batch_task_artifact_key(end.name, job.job_id)
        if not end.model_artifact:
            raise ValueError(f"training job {end.name} completed without ModelArtifacts")
        return _split_s3_uri(end.model_artifact)

    def _publish(self, jobs: list[Job], end: TrainingJobEnd) -> list[str]:
        urls = {}
        for job in jobs:
            source_bucket, source_key = self._artifact_source(job, end)
            key = model_artifact_key(self.settings.model_prefix, job.user_id, job.model_id)
            # Managed copy: multipart above 5 GB, which large models reach.
            self.s3.copy(
                CopySource={"Bucket": source_bucket, "Key": source_key},
                Bucket=self.settings.model_bucket,
                Key=key,
            )
            urls[job.job_id] = f"s3://{self.settings.model_bucket}/{key}"
            self.store.record_model(job, urls[job.job_id])
        if not self.store.finish(jobs, end.name, status=JobStatus.READY, artifact_urls=urls):
            return []
        self._emit(
            MODEL_READY_DETAIL_TYPE,
            [{**self._describe(job), "artifact_url": urls[job.job_id]} for job in jobs],
        )
        logger.info("models published", training_job=end.name, jobs=list(urls))
        return list(urls)

    @staticmethod
    def _describe(job: Job) -> dict[str, str]:
        return {
            "job_id": job.job_id,
            "user_id": job.user_id,
            "model_id": job.model_id,
            "target_model": target_model(job.user_id, job.model_id),
        }

    def _emit(self, detail_type: str, details: list[dict[str, str]]) -> None:
        entries = [
            {
                "Source": self.settings.event_source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": self.settings.event_bus,
            }
            for detail in details
        ]
        for start in range(0, len(entries), 10):
            response = self.events.put_events(Entries=entries[start : start + 10])
            if response.get("FailedEntryCount"):
                # The job state is already final; the application can re-read it from the table.
                logger.error("some events were not put", failed=response["FailedEntryCount"])


def build_publisher() -> Publisher:
    tables = Tables.from_env()
    return Publisher(
        PublisherSettings.from_env(),
        JobStore(clients.dynamodb(), tables.jobs, tables.models),
        s3=clients.s3(),
        events=clients.events(),
    )


@logger.inject_lambda_context
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    ended = build_publisher().on_training_job_end(TrainingJobEnd.from_detail(event.detail))
    return {"ended": ended}
