"""Property: whatever the interleaving of uploads, duplicate deliveries, crashes, throttling,
sweeps, completions and lost state changes, every upload ends with exactly one job, one training
job and one terminal state, every slot is freed, and nothing is lost.

Runs the real handlers against moto in server mode; moto's request recording is the witness
for "exactly one CreateTrainingJob per training job".
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.awsrequest import AWSResponse
from finetune_world import (
    MODEL_PREFIX,
    FakeLambdaContext,
    FinetuneWorld,
    StreamReader,
    lambda_stream_event,
    reset_clients,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto_server import MotoServer

from inferfleet.constructs.finetune_handlers import clients, launcher, publisher, register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.layout import batch_task_artifact_key
from inferfleet.constructs.finetune_handlers.schema import TERMINAL_STATUSES, JobStatus

USERS = ("ann", "ben", "cat")
LEASE_S = 600
RECONCILE_AFTER_S = 900


class SimulatedCrash(Exception):
    pass


class _Body:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def stream(self, **_: Any):
        yield self.payload


@dataclass
class Faults:
    """Faults armed for the next CreateTrainingJob calls, injected at the client boundary."""

    throttles: int = 0
    crash_before: bool = False
    crash_after: bool = False

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.throttles:
            self.throttles -= 1
            body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
            headers = {"Content-Type": "application/x-amz-json-1.1"}
            return AWSResponse(request.url, 400, headers, _Body(body))
        return None

    def before_call(self, **_: Any) -> None:
        if self.crash_before:
            self.crash_before = False
            raise SimulatedCrash("before CreateTrainingJob")

    def after_call(self, **_: Any) -> None:
        if self.crash_after:
            self.crash_after = False
            raise SimulatedCrash("after CreateTrainingJob")


@dataclass
class Run:
    world: FinetuneWorld
    reader: StreamReader
    faults: Faults
    # (user, job id) -> S3 event
    uploads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    stream_batches: list[dict[str, Any]] = field(default_factory=list)
    ended_events: list[dict[str, Any]] = field(default_factory=list)
    clock_offset_s: float = 0.0

    @property
    def store(self) -> JobStore:
        return JobStore(
            self.world.client("dynamodb"), self.world.jobs_table, self.world.models_table
        )

    def upload(self, user: str) -> None:
        job_id, event = self.world.upload(user, hyperparameters={"epochs": 1})
        self.uploads[user, job_id] = event

    def deliver_upload(self, index: int) -> None:
        if self.uploads:
            event = list(self.uploads.values())[index % len(self.uploads)]
            register.handler(event, FakeLambdaContext())

    def deliver_stream(self, redeliver: bool) -> None:
        if redeliver and self.stream_batches:
            batch = self.stream_batches[-1]
        else:
            records = self.reader.read()
            if not records:
                return
            batch = lambda_stream_event(records)
            self.stream_batches.append(batch)
        with contextlib.suppress(SimulatedCrash, BatchProcessingError):
            launcher.handler(batch, FakeLambdaContext())

    def sweep(self, lease_expired: bool) -> None:
        sweeper = launcher.build_launcher(FakeLambdaContext())
        if lease_expired:  # time passes beyond every lease taken so far
            self.clock_offset_s += LEASE_S + 1
        offset = self.clock_offset_s
        sweeper.now = lambda: time.time() + offset
        with contextlib.suppress(SimulatedCrash):
            sweeper.sweep()

    def running_training_jobs(self) -> list[str]:
        names = {
            job.training_job_name
            for status in (JobStatus.TRAINING, JobStatus.LAUNCHING)
            for job in self.store.with_status(status)
        }
        existing = set(self.world.training_jobs())
        return sorted(name for name in names if name in existing)

    def complete(self, index: int, succeed: bool, *, heard: bool = True) -> None:
        running = self.running_training_jobs()
        if not running:
            return
        name = running[index % len(running)]
        if succeed:
            self.world.write_training_output(name)
            for job in self.store.for_training_job(name):
                self.world.client("s3").put_object(
                    Bucket=self.world.data_bucket,
                    Key=batch_task_artifact_key(name, job.user_id, job.job_id),
                    Body=job.job_id.encode(),
                )
            event = self.world.training_job_event(name)
        else:
            event = self.world.training_job_event(name, status="Failed", failure_reason="OOM")
        if heard:
            self.ended_events.append(event)
            publisher.handler(event, FakeLambdaContext())

    def reconcile(self, long_after: bool) -> None:
        """The publisher's sweep; moto's training jobs have all ended the moment they began."""
        reconciler = publisher.build_publisher(FakeLambdaContext())
        offset = self.clock_offset_s + (RECONCILE_AFTER_S if long_after else 0)
        reconciler.now = lambda: time.time() + offset
        reconciler.reconcile()

    def redeliver_end(self, index: int) -> None:
        if self.ended_events:
            event = self.ended_events[index % len(self.ended_events)]
            publisher.handler(event, FakeLambdaContext())

    def drain(self) -> None:
        """S3 delivers every event at least once; sweeps and training jobs then run dry."""
        for event in self.uploads.values():
            register.handler(event, FakeLambdaContext())
        for _ in range(50):
            self.sweep(lease_expired=True)
            running = self.running_training_jobs()
            open_jobs = [
                key
                for key in self.uploads
                if (job := self.store.get(*key)) and job.status not in TERMINAL_STATUSES
            ]
            if not open_jobs:
                return
            for position in range(len(running)):
                self.complete(0, succeed=position % 2 == 0)
        raise AssertionError("jobs still open after draining")


operation = st.one_of(
    st.tuples(st.just("upload"), st.sampled_from(USERS)),
    st.tuples(st.just("deliver_upload"), st.integers(0, 20)),
    st.tuples(st.just("stream"), st.booleans()),
    st.tuples(st.just("sweep"), st.booleans()),
    st.tuples(st.just("throttle"), st.integers(1, 3)),
    st.tuples(st.just("crash"), st.booleans()),
    st.tuples(st.just("complete"), st.tuples(st.integers(0, 20), st.booleans())),
    st.tuples(st.just("redeliver_end"), st.integers(0, 20)),
    st.tuples(st.just("complete_unheard"), st.integers(0, 20)),
    st.tuples(st.just("reconcile"), st.booleans()),
)


def _apply(run: Run, name: str, argument: Any) -> None:
    if name == "upload":
        run.upload(argument)
    elif name == "deliver_upload":
        run.deliver_upload(argument)
    elif name == "stream":
        run.deliver_stream(redeliver=argument)
    elif name == "sweep":
        run.sweep(lease_expired=argument)
    elif name == "throttle":
        run.faults.throttles += argument
    elif name == "crash":
        if argument:
            run.faults.crash_after = True
        else:
            run.faults.crash_before = True
    elif name == "complete":
        run.complete(*argument)
    elif name == "complete_unheard":
        run.complete(argument, succeed=True, heard=False)
    elif name == "reconcile":
        run.reconcile(long_after=argument)
    else:
        run.redeliver_end(argument)


@pytest.mark.slow
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operations=st.lists(operation, min_size=8, max_size=30),
    batch_threshold=st.sampled_from([0, 3]),
    max_running=st.sampled_from([2, 50]),
)
def test_every_upload_ends_with_one_training_job_and_one_terminal_state(
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    operations: list[tuple[str, Any]],
    batch_threshold: int,
    max_running: int,
) -> None:
    moto.reset()
    world = FinetuneWorld(suffix=uuid.uuid4().hex[:8], region=moto.region)
    env = world.environment(
        BATCH_THRESHOLD=str(batch_threshold),
        BATCH_TASKS="3",
        MAX_RUNNING_JOBS=str(max_running),
        AWS_CLIENT_MAX_ATTEMPTS="1",
        MAX_ATTEMPTS="50",
        LAUNCH_LEASE_S=str(LEASE_S),
        RECONCILE_AFTER_S=str(RECONCILE_AFTER_S),
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_clients()
    world.create()
    faults = Faults()
    events = clients.sagemaker().meta.events
    events.register_first("before-send.sagemaker.CreateTrainingJob", faults.before_send)
    events.register("before-call.sagemaker.CreateTrainingJob", faults.before_call)
    events.register("after-call.sagemaker.CreateTrainingJob", faults.after_call)
    run = Run(world=world, reader=world.stream_reader(), faults=faults)
    run.upload(USERS[0])

    for name, argument in operations:
        _apply(run, name, argument)
    run.drain()

    store = run.store
    items = world.client("dynamodb").scan(TableName=world.jobs_table)["Items"]
    keys = sorted(
        (item["user_id"]["S"], item["job_id"]["S"])
        for item in items
        if item["user_id"]["S"][0] != "#"
    )
    assert keys == sorted(run.uploads), "one job per upload, none lost, none extra"
    jobs = [store.get(*key) for key in keys]
    assert all(job.status in TERMINAL_STATUSES for job in jobs)

    created = Counter(
        body["TrainingJobName"] for body in moto.recorded_targets("CreateTrainingJob")
    )
    assert all(count == 1 for count in created.values()), f"a name was created twice: {created}"
    assert set(created) == set(world.training_jobs())
    assert {job.training_job_name for job in jobs} == set(created), "no orphan training job"
    assert store.running_count() == 0

    models = {
        (model["user_id"], model["model_id"]): model
        for user in USERS
        for model in store.models_of(user)
    }
    ready = [job for job in jobs if job.status is JobStatus.READY]
    # Each model's record holds one of its jobs' versions, and only READY jobs have models.
    assert set(models) == {(job.user_id, job.model_id) for job in ready}
    for job in ready:
        key = f"{MODEL_PREFIX}{job.user_id}/{job.model_id}/{job.job_id}.tar.gz"
        world.client("s3").head_object(Bucket=world.model_bucket, Key=key)
        assert models[job.user_id, job.model_id]["version"] == job.job_id
    for job in jobs:
        if job.status is JobStatus.FAILED:
            # Failed by the training job, or ended by the sweep before its artifact came.
            assert job.error == "OOM" or "is missing" in job.error or "left no" in job.error
