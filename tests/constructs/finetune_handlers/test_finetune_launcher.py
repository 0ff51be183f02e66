"""The launcher against moto: deterministic names, crash recovery, throttling, slots, pacing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.awsrequest import AWSResponse
from finetune_world import (
    TRAINING_JOB_PREFIX,
    FakeLambdaContext,
    FinetuneWorld,
    lambda_stream_event,
)
from moto_server import MotoServer

from inferfleet.constructs.finetune_handlers import clients, launcher, register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.layout import batch_manifest_key, training_job_name
from inferfleet.constructs.finetune_handlers.schema import JobStatus
from inferfleet.constructs.finetune_handlers.training import TASKS_MANIFEST_HYPERPARAMETER


class SimulatedCrash(Exception):
    """The launcher's process dies right after SageMaker accepted CreateTrainingJob."""


class _Body:
    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def stream(self, **_: Any):
        yield self.payload


def throttle_create_training_job(calls: list[str]):
    """A before-send hook: SageMaker answers 400 ThrottlingException, as when over ~1 TPS."""

    def hook(request: Any, **_: Any) -> AWSResponse:
        calls.append(request.url)
        body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "t"}
        return AWSResponse(request.url, 400, headers, _Body(body))

    return hook


def crash_after_create(**_: Any) -> None:
    raise SimulatedCrash


def _store(world: FinetuneWorld) -> JobStore:
    return JobStore(world.client("dynamodb"), world.jobs_table, world.models_table)


def _submit(world: FinetuneWorld, user: str, count: int = 1) -> list[str]:
    job_ids = []
    for _ in range(count):
        job_id, event = world.upload(user, hyperparameters={"epochs": 1})
        register.handler(event, FakeLambdaContext())
        job_ids.append(job_id)
    return job_ids


def _created(moto: MotoServer) -> list[str]:
    return [body["TrainingJobName"] for body in moto.recorded_targets("CreateTrainingJob")]


def test_a_new_job_starts_one_training_job_with_its_deterministic_name(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    reader = world.stream_reader()
    [job_id] = _submit(world, "alice")

    result = launcher.handler(lambda_stream_event(reader.read()), FakeLambdaContext())

    name = training_job_name(TRAINING_JOB_PREFIX, job_id)
    assert result == {"batchItemFailures": []}
    assert _created(moto) == [name]
    job = _store(world).get(job_id)
    assert job is not None and job.status is JobStatus.TRAINING
    assert job.training_job_name == name and job.attempts == 1
    described = world.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert described["HyperParameters"] == {"epochs": "1", "user_id": "alice", "model_id": job_id}
    channel = described["InputDataConfig"][0]["DataSource"]["S3DataSource"]
    assert channel["S3Uri"] == job.data_uri
    assert _store(world).running_count() == 1


def test_a_crash_after_create_then_retries_start_no_second_job(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    reader = world.stream_reader()
    [job_id] = _submit(world, "alice")
    stream_event = lambda_stream_event(reader.read())
    sagemaker = clients.sagemaker()
    sagemaker.meta.events.register("after-call.sagemaker.CreateTrainingJob", crash_after_create)
    try:
        # Every record of the batch failed, so the invocation fails: Lambda delivers it again.
        with pytest.raises(BatchProcessingError, match="SimulatedCrash"):
            launcher.handler(stream_event, FakeLambdaContext())
    finally:
        sagemaker.meta.events.unregister(
            "after-call.sagemaker.CreateTrainingJob", crash_after_create
        )
    assert _store(world).get(job_id).status is JobStatus.LAUNCHING

    assert launcher.handler(stream_event, FakeLambdaContext()) == {"batchItemFailures": []}
    sweep_within_lease = launcher.handler({"source": "aws.events"}, FakeLambdaContext())
    assert sweep_within_lease["started"] == sweep_within_lease["adopted"] == []

    later = launcher.build_launcher(FakeLambdaContext())
    later.now = lambda: time.time() + 3600  # the launch lease has run out
    report = later.sweep()

    name = training_job_name(TRAINING_JOB_PREFIX, job_id)
    assert report.adopted == [name] and report.started == []
    assert _created(moto) == [name]
    assert world.training_jobs() == [name]
    job = _store(world).get(job_id)
    assert job.status is JobStatus.TRAINING and job.attempts == 2
    assert _store(world).running_count() == 1


def test_a_lost_launch_is_started_by_the_sweep_once_its_lease_runs_out(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    """The launcher died after claiming, before SageMaker heard of the job."""
    [job_id] = _submit(world, "dora")
    store = _store(world)
    job = store.get(job_id)
    name = training_job_name(TRAINING_JOB_PREFIX, job_id)
    store.claim([job], name, lease_until=int(time.time()) - 1, max_running=10)

    report = launcher.handler({"source": "aws.events"}, FakeLambdaContext())

    assert report["started"] == [name]
    assert _created(moto) == [name]
    assert store.get(job_id).status is JobStatus.TRAINING


def test_throttling_leaves_the_job_queued_and_the_next_sweep_launches_it(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    reader = world.stream_reader()
    job_ids = _submit(world, "erin", count=2)
    calls: list[str] = []
    hook = throttle_create_training_job(calls)
    sagemaker = clients.sagemaker()
    sagemaker.meta.events.register_first("before-send.sagemaker.CreateTrainingJob", hook)
    try:
        result = launcher.handler(lambda_stream_event(reader.read()), FakeLambdaContext())
    finally:
        sagemaker.meta.events.unregister("before-send.sagemaker.CreateTrainingJob", hook)

    assert result == {"batchItemFailures": []}
    # botocore's standard retry mode backed off and tried again before giving up...
    assert len(calls) == int(world.environment()["AWS_CLIENT_MAX_ATTEMPTS"])
    # ...and the launcher stopped there: the second job was not tried.
    assert _created(moto) == []
    store = _store(world)
    for job_id in job_ids:
        job = store.get(job_id)
        assert job.status is JobStatus.QUEUED
        assert job.attempts == 0 and job.training_job_name is None
    assert store.running_count() == 0
    # Putting the job back in the queue does not wake the launcher (stream filter): no loop.
    assert reader.read() == []

    report = launcher.handler({"source": "aws.events"}, FakeLambdaContext())

    names = sorted(training_job_name(TRAINING_JOB_PREFIX, job_id) for job_id in job_ids)
    assert sorted(report["started"]) == names
    assert sorted(_created(moto)) == names
    assert all(store.get(job_id).status is JobStatus.TRAINING for job_id in job_ids)


def test_at_most_max_running_jobs_run(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_RUNNING_JOBS", "2")
    job_ids = _submit(world, "fay", count=5)

    report = launcher.handler({"source": "aws.events"}, FakeLambdaContext())

    assert len(report["started"]) == 2 and report["at_capacity"] is True
    statuses = [_store(world).get(job_id).status for job_id in job_ids]
    assert statuses.count(JobStatus.TRAINING) == 2
    assert statuses.count(JobStatus.QUEUED) == 3
    # Oldest first.
    assert statuses[:2] == [JobStatus.TRAINING, JobStatus.TRAINING]
    assert _store(world).running_count() == 2


def test_create_calls_are_paced(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate = 8.0
    monkeypatch.setenv("CREATE_CALLS_PER_SECOND", str(rate))
    _submit(world, "gus", count=4)

    started = time.monotonic()
    report = launcher.handler({"source": "aws.events"}, FakeLambdaContext())
    elapsed = time.monotonic() - started

    assert len(report["started"]) == 4
    # Four calls need three full intervals between them, however fast moto answers.
    assert elapsed >= 3 / rate * 0.95


def test_a_poison_record_fails_alone(world: FinetuneWorld, moto: MotoServer) -> None:
    reader = world.stream_reader()
    [job_id] = _submit(world, "hal")
    records = reader.read()
    poison = json.loads(json.dumps(records[0]))
    poison["dynamodb"].pop("NewImage")
    poison["dynamodb"]["SequenceNumber"] = "999"

    result = launcher.handler(lambda_stream_event([poison, *records]), FakeLambdaContext())

    assert result == {"batchItemFailures": [{"itemIdentifier": "999"}]}
    assert _store(world).get(job_id).status is JobStatus.TRAINING


def test_a_long_backlog_runs_as_one_multi_instance_job_with_a_task_manifest(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_THRESHOLD", "4")
    monkeypatch.setenv("BATCH_TASKS", "4")
    monkeypatch.setenv("BATCH_INSTANCES", "2")
    job_ids = _submit(world, "ivy", count=6)

    report = launcher.handler({"source": "aws.events"}, FakeLambdaContext())

    # 6 queued >= 4: one batch of the 4 oldest; the 2 left are under the threshold.
    store = _store(world)
    jobs = [store.get(job_id) for job_id in job_ids]
    batch_name = jobs[0].training_job_name
    assert [job.training_job_name for job in jobs[:4]] == [batch_name] * 4
    assert [job.task_index for job in jobs[:4]] == [0, 1, 2, 3]
    assert len(report["started"]) == 3
    assert sorted(_created(moto)) == sorted(report["started"])
    assert store.running_count() == 3

    described = world.client("sagemaker").describe_training_job(TrainingJobName=batch_name)
    assert described["ResourceConfig"]["InstanceCount"] == 2
    manifest_uri = described["HyperParameters"][TASKS_MANIFEST_HYPERPARAMETER]
    assert manifest_uri == f"s3://{world.data_bucket}/{batch_manifest_key(batch_name)}"
    body = (
        world.client("s3")
        .get_object(Bucket=world.data_bucket, Key=batch_manifest_key(batch_name))["Body"]
        .read()
    )
    tasks = json.loads(body)["tasks"]
    assert [task["job_id"] for task in tasks] == job_ids[:4]
    assert [task["index"] for task in tasks] == [0, 1, 2, 3]
    assert all(task["hyperparameters"] == {"epochs": "1"} for task in tasks)
