"""Launcher: starts SageMaker training jobs for queued jobs.

Fed by the job table's stream (new jobs, launched at once) and by a scheduled sweep (jobs left
queued by throttling or a full slot count, launches interrupted by a crash, and batching when
the backlog is long). It runs with a reserved concurrency of one, so it alone paces
CreateTrainingJob; the running-jobs counter and conditional claims keep it correct anyway.

The stream only saves time: the sweep finds every queued job, so a stream record that is not
a new queued job is logged and skipped, and so is any event that is neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from . import clients
from .hyperparameters import HyperparameterError, check_hyperparameters
from .jobs import ClaimOutcome, Job, JobStore
from .layout import batch_training_job_name, is_batch_name, training_job_name
from .pacing import Pacer
from .schema import JOB_KEY, USER_KEY, JobStatus
from .settings import LauncherSettings, Tables, TrainingLimits
from .training import (
    StartOutcome,
    available_warm_pools,
    batch_request,
    single_job_request,
    start_training_job,
    training_job_exists,
    write_batch_manifest,
)

logger = Logger(service="inferfleet-finetune-launcher")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

# Seconds kept back from the function timeout to finish the current launch and report.
TIME_RESERVE_S = 15.0
SWEEP_PAGE = 25
_BRIEF_CHARS = 300


@dataclass
class LaunchReport:
    started: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    failed_jobs: list[str] = field(default_factory=list)
    throttled: bool = False
    at_capacity: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Launcher:
    def __init__(
        self,
        settings: LauncherSettings,
        limits: TrainingLimits,
        store: JobStore,
        *,
        sagemaker: Any,
        s3: Any,
        pacer: Pacer,
        time_left_s: Callable[[], float],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.store = store
        self.sagemaker = sagemaker
        self.s3 = s3
        self.pacer = pacer
        self.time_left_s = time_left_s
        self.now = now
        self.report = LaunchReport()
        self._backlog: int | None = None
        self._warm_pools: int | None = None

    @property
    def halted(self) -> bool:
        """Nothing more to try in this invocation: the sweep takes what is left."""
        return (
            self.report.throttled
            or self.report.at_capacity
            or self.time_left_s() < TIME_RESERVE_S + self.pacer.interval
        )

    def batching(self) -> bool:
        if self.settings.batch_threshold <= 0:
            return False
        if self._backlog is None:
            self._backlog = self.store.count_with_status(JobStatus.QUEUED)
        return self._backlog >= self.settings.batch_threshold

    # -- entry points ------------------------------------------------------------------------

    def on_stream_record(self, record: DynamoDBRecord) -> None:
        """One job-table stream record; raising marks it failed (retried, then dead-lettered)."""
        key = _queued_job_key(record.raw_event["dynamodb"].get("NewImage"))
        if key is None:
            logger.warning(
                "not a new queued job, skipped", record=repr(record.raw_event)[:_BRIEF_CHARS]
            )
            return
        if self.halted or self.batching():
            return
        job = self.store.get(*key)
        if job is not None and job.status == JobStatus.QUEUED and self.admissible([job]):
            self.launch_single(job)

    def after_stream(self) -> None:
        if self.batching():
            self.launch_queued()

    def sweep(self) -> LaunchReport:
        self.recover_stale_launches()
        self.launch_queued()
        return self.report

    # -- launching ---------------------------------------------------------------------------

    def launch_queued(self) -> None:
        while not self.halted:
            batching = self.batching()
            page = self.settings.batch_tasks if batching else SWEEP_PAGE
            found = self.store.with_status(JobStatus.QUEUED, limit=page)
            if not found:
                return
            queued = self.admissible(found)
            if not queued:
                continue  # every one of them failed the checks and left the queue
            pools = self.warm_pools(wanted=len(queued)) if batching else 0
            if batching and len(queued) > 1 and not pools:
                progressed = self.launch_batch(queued)
            else:
                # A warm pool takes a single job only: those go first, while pools wait.
                progressed = self._launch_each(queued[:pools] if pools else queued)
            if not progressed:
                return

    def warm_pools(self, *, wanted: int) -> int:
        """This queue's warm pools not yet given a job in this invocation."""
        if self._warm_pools is None:
            self._warm_pools = available_warm_pools(self.sagemaker, self.settings, wanted=wanted)
        return self._warm_pools

    def _launch_each(self, jobs: list[Job]) -> bool:
        progressed = False
        for job in jobs:
            if self.halted:
                break
            if self.launch_single(job):
                progressed = True
                if self._warm_pools:
                    self._warm_pools -= 1
        return progressed

    def admissible(self, jobs: list[Job]) -> list[Job]:
        """The jobs this queue may run; the others end FAILED, saying what is not allowed.

        Registration checked the hyperparameters already; the limits may have been lowered
        since.
        """
        allowed = []
        for job in jobs:
            try:
                check_hyperparameters(job.hyperparameters, self.limits)
            except HyperparameterError as error:
                if self.store.reject(job, str(error)):
                    self.report.failed_jobs.append(f"{job.user_id}/{job.job_id}")
                continue
            allowed.append(job)
        return allowed

    def launch_single(self, job: Job) -> bool:
        name = training_job_name(self.settings.training_job_prefix, job.user_id, job.job_id)
        return self._claim_and_start([job], name, batch=False)

    def launch_batch(self, jobs: list[Job]) -> bool:
        name = batch_training_job_name(self.settings.training_job_prefix, [job.key for job in jobs])
        launched = self._claim_and_start(jobs, name, batch=True)
        if launched and self._backlog is not None:
            self._backlog -= len(jobs)
        return launched

    def _claim_and_start(self, jobs: list[Job], name: str, *, batch: bool) -> bool:
        lease_until = int(self.now()) + self.settings.lease_s
        outcome = self.store.claim(
            jobs, name, lease_until=lease_until, max_running=self.settings.max_running_jobs
        )
        if outcome is ClaimOutcome.AT_CAPACITY:
            self.report.at_capacity = True
            return False
        if outcome is ClaimOutcome.LOST:
            return False
        claimed = [
            replace(
                job,
                status=JobStatus.LAUNCHING,
                training_job_name=name,
                task_index=index,
                lease_until=lease_until,
                attempts=job.attempts + 1,
            )
            for index, job in enumerate(jobs)
        ]
        self._start(claimed, name, batch=batch, look_first=False)
        return True

    def _start(self, jobs: list[Job], name: str, *, batch: bool, look_first: bool) -> None:
        if batch:
            write_batch_manifest(self.s3, self.settings, jobs, name)
            request = batch_request(self.settings, jobs, name)
        else:
            request = single_job_request(self.settings, jobs[0], name)
        self.pacer.wait()
        result = start_training_job(self.sagemaker, request, look_first=look_first)
        job_ids = [f"{job.user_id}/{job.job_id}" for job in jobs]
        if result.outcome is StartOutcome.THROTTLED:
            logger.warning("throttled, left queued", training_job=name, code=result.error)
            self.store.release(jobs, name)
            self.report.throttled = True
        elif result.outcome is StartOutcome.REJECTED:
            logger.error("training job rejected", training_job=name, error=result.error)
            self.store.fail(jobs, name, f"CreateTrainingJob: {result.error}")
            self.report.failed_jobs.extend(job_ids)
        else:
            self.store.mark_training(jobs, name)
            started = result.outcome is StartOutcome.STARTED
            (self.report.started if started else self.report.adopted).append(name)
            logger.info("training job running", training_job=name, jobs=job_ids, new=started)

    # -- crash recovery ----------------------------------------------------------------------

    def recover_stale_launches(self) -> None:
        """Finish launches whose launcher died between claiming and recording the start."""
        now = int(self.now())
        names = {
            job.training_job_name
            for job in self.store.with_status(JobStatus.LAUNCHING)
            if job.training_job_name and (job.lease_until or 0) < now
        }
        for name in sorted(names):
            if self.report.throttled or self.time_left_s() < TIME_RESERVE_S:
                return
            jobs = self.store.for_training_job(name)
            stale = [job for job in jobs if job.status == JobStatus.LAUNCHING]
            if not stale or (stale[0].lease_until or 0) >= now:
                continue
            if stale[0].attempts >= self.settings.max_attempts:
                self._give_up(stale, name)
                continue
            lease_until = now + self.settings.lease_s
            if not self.store.renew_lease(stale[0], lease_until=lease_until):
                continue
            stale = [replace(job, attempts=job.attempts + 1) for job in stale]
            batch = is_batch_name(self.settings.training_job_prefix, name)
            self._start(stale, name, batch=batch, look_first=True)

    def _give_up(self, jobs: list[Job], name: str) -> None:
        if training_job_exists(self.sagemaker, name):
            self.store.mark_training(jobs, name)
            self.report.adopted.append(name)
            return
        self.store.fail(jobs, name, f"gave up after {jobs[0].attempts} launch attempts")
        self.report.failed_jobs.extend(f"{job.user_id}/{job.job_id}" for job in jobs)


def _queued_job_key(image: object) -> tuple[str, str] | None:
    """``(user_id, job_id)`` of a stream image (typed as DynamoDB writes it) of a queued job."""
    if not isinstance(image, dict) or image.get("status") != {"S": JobStatus.QUEUED}:
        return None
    key = []
    for name in (USER_KEY, JOB_KEY):
        value = image.get(name)
        if not isinstance(value, dict) or not isinstance(value.get("S"), str) or not value["S"]:
            return None
        key.append(value["S"])
    return key[0], key[1]


def _stream_records(records: object) -> tuple[list[dict[str, Any]], int]:
    """The records shaped like DynamoDB stream records, and how many were not."""
    if not isinstance(records, list):
        return [], 1
    shaped = [
        record
        for record in records
        if isinstance(record, dict)
        and record.get("eventSource") == "aws:dynamodb"
        and isinstance(record.get("dynamodb"), dict)
        and isinstance(record["dynamodb"].get("SequenceNumber"), str)
    ]
    return shaped, len(records) - len(shaped)


def is_sweep(event: object) -> bool:
    """The schedule's input, or a plain EventBridge scheduled event."""
    return isinstance(event, dict) and (
        event.get("sweep") is True or event.get("source") == "aws.events"
    )


_pacer: Pacer | None = None


def build_launcher(context: LambdaContext) -> Launcher:
    global _pacer
    settings = LauncherSettings.from_env()
    if _pacer is None or _pacer.interval != 1.0 / settings.create_calls_per_second:
        _pacer = Pacer(settings.create_calls_per_second)
    tables = Tables.from_env()
    return Launcher(
        settings,
        TrainingLimits.from_env(),
        JobStore(clients.dynamodb(), tables.jobs, tables.models),
        sagemaker=clients.sagemaker(),
        s3=clients.s3(),
        pacer=_pacer,
        time_left_s=lambda: context.get_remaining_time_in_millis() / 1000,
    )


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    launcher = build_launcher(context)
    if isinstance(event, dict) and "Records" in event:
        records, skipped = _stream_records(event["Records"])
        if skipped:
            logger.warning("records that are not stream records, skipped", skipped=skipped)
        if not records:
            return {"batchItemFailures": []}
        response = process_partial_response(
            event={**event, "Records": records},
            record_handler=launcher.on_stream_record,
            processor=processor,
            context=context,
        )
        launcher.after_stream()
        return response
    if is_sweep(event):
        return launcher.sweep().as_dict()
    logger.warning("neither a stream batch nor a sweep, skipped", event=repr(event)[:_BRIEF_CHARS])
    return {"skipped": 1}
