"""The launcher against moto: deterministic names, crash recovery, throttling, slots, pacing,
what a training job may be asked to do, warm pools, and events that are not the launcher's."""

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
from inferfleet.constructs.finetune_handlers.hyperparameters import (
    ADAPTER_ARTIFACT,
    ARTIFACT_HYPERPARAMETER,
    TASKS_MANIFEST_HYPERPARAMETER,
)
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.layout import (
    batch_manifest_key,
    is_batch_name,
    training_job_name,
)
from inferfleet.constructs.finetune_handlers.schema import JobStatus


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


def _submit(world: FinetuneWorld, user: str, count: int = 1, **hyperparameters: Any) -> list[str]:
    job_ids = []
    for _ in range(count):
        job_id, event = world.upload(user, hyperparameters={"epochs": 1, **hyperparameters})
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

    name = training_job_name(TRAINING_JOB_PREFIX, "alice", job_id)
    assert result == {"batchItemFailures": []}
    assert _created(moto) == [name]
    job = _store(world).get("alice", job_id)
    assert job is not None and job.status is JobStatus.TRAINING
    assert job.training_job_name == name and job.attempts == 1
    described = world.client("sagemaker").describe_training_job(TrainingJobName=name)
    assert described["HyperParameters"] == {"epochs": "1", "user_id": "alice", "model_id": job_id}
    # Alone on the network: SageMaker brings the data in and the model out.
    assert described["EnableNetworkIsolation"] is True
    assert described["RoleArn"] == world.single_role_arn
    assert "KeepAlivePeriodInSeconds" not in described["ResourceConfig"]
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
    assert _store(world).get("alice", job_id).status is JobStatus.LAUNCHING

    assert launcher.handler(stream_event, FakeLambdaContext()) == {"batchItemFailures": []}
    sweep_within_lease = launcher.handler({"sweep": True}, FakeLambdaContext())
    assert sweep_within_lease["started"] == sweep_within_lease["adopted"] == []

    later = launcher.build_launcher(FakeLambdaContext())
    later.now = lambda: time.time() + 3600  # the launch lease has run out
    report = later.sweep()

    name = training_job_name(TRAINING_JOB_PREFIX, "alice", job_id)
    assert report.adopted == [name] and report.started == []
    assert _created(moto) == [name]
    assert world.training_jobs() == [name]
    job = _store(world).get("alice", job_id)
    assert job.status is JobStatus.TRAINING and job.attempts == 2
    assert _store(world).running_count() == 1


def test_a_lost_launch_is_started_by_the_sweep_once_its_lease_runs_out(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    """The launcher died after claiming, before SageMaker heard of the job."""
    [job_id] = _submit(world, "dora")
    store = _store(world)
    job = store.get("dora", job_id)
    name = training_job_name(TRAINING_JOB_PREFIX, "dora", job_id)
    store.claim([job], name, lease_until=int(time.time()) - 1, max_running=10)

    report = launcher.handler({"sweep": True}, FakeLambdaContext())

    assert report["started"] == [name]
    assert _created(moto) == [name]
    assert store.get("dora", job_id).status is JobStatus.TRAINING


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
        job = store.get("erin", job_id)
        assert job.status is JobStatus.QUEUED
        assert job.attempts == 0 and job.training_job_name is None
    assert store.running_count() == 0
    # Putting the job back in the queue does not wake the launcher (stream filter): no loop.
    assert reader.read() == []

    report = launcher.handler({"sweep": True}, FakeLambdaContext())

    names = sorted(training_job_name(TRAINING_JOB_PREFIX, "erin", job_id) for job_id in job_ids)
    assert sorted(report["started"]) == names
    assert sorted(_created(moto)) == names
    assert all(store.get("erin", job_id).status is JobStatus.TRAINING for job_id in job_ids)


def test_at_most_max_running_jobs_run(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_RUNNING_JOBS", "2")
    job_ids = _submit(world, "fay", count=5)

    report = launcher.handler({"sweep": True}, FakeLambdaContext())

    assert len(report["started"]) == 2 and report["at_capacity"] is True
    statuses = [_store(world).get("fay", job_id).status for job_id in job_ids]
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
    report = launcher.handler({"sweep": True}, FakeLambdaContext())
    elapsed = time.monotonic() - started

    assert len(report["started"]) == 4
    # Four calls need three full intervals between them, however fast moto answers.
    assert elapsed >= 3 / rate * 0.95


def test_a_stream_record_that_is_not_a_new_queued_job_is_skipped(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    """The sweep finds every queued job, so the stream's odd records cost nothing."""
    reader = world.stream_reader()
    [job_id] = _submit(world, "hal")
    records = reader.read()
    odd = []
    for change in (
        lambda r: r["dynamodb"].pop("NewImage"),
        lambda r: r["dynamodb"]["NewImage"].pop("job_id"),
        lambda r: r["dynamodb"]["NewImage"].update(status="QUEUED"),  # not typed
        lambda r: r["dynamodb"]["NewImage"].update(job_id={"Q": "x"}),
    ):
        record = json.loads(json.dumps(records[0]))
        change(record)
        odd.append(record)

    result = launcher.handler(
        lambda_stream_event([*odd, "not a record", {"eventSource": "aws:sqs"}, *records]),
        FakeLambdaContext(),
    )

    assert result == {"batchItemFailures": []}
    assert _store(world).get("hal", job_id).status is JobStatus.TRAINING
    assert len(_created(moto)) == 1


@pytest.mark.parametrize(
    "event",
    [{}, {"foo": 1}, {"sweep": "yes"}, {"Records": "nope"}, {"Records": [1, 2]}, [1], "x", None],
)
def test_an_event_that_is_neither_a_stream_batch_nor_a_sweep_launches_nothing(
    world: FinetuneWorld, moto: MotoServer, event: Any
) -> None:
    _submit(world, "ian")

    result = launcher.handler(event, FakeLambdaContext())

    assert result in ({"skipped": 1}, {"batchItemFailures": []})
    assert _created(moto) == []


def test_a_job_the_queues_limits_no_longer_allow_fails_without_a_training_job(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered under the old limits; the queue was redeployed with lower ones since."""
    [job_id] = _submit(world, "jo", epochs=8)
    [allowed] = _submit(world, "jo", epochs=2)
    monkeypatch.setenv("MAX_EPOCHS", "3")

    report = launcher.handler({"sweep": True}, FakeLambdaContext())

    job = _store(world).get("jo", job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == "hyperparameter epochs=8: this queue allows whole numbers 1..3"
    assert report["failed_jobs"] == [f"jo/{job_id}"]
    assert _created(moto) == [training_job_name(TRAINING_JOB_PREFIX, "jo", allowed)]
    assert _store(world).running_count() == 1


def test_for_adapter_components_the_job_is_asked_for_the_adapter_alone(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_HOSTING", "inference_components")
    [job_id] = _submit(world, "lea")

    launcher.handler({"sweep": True}, FakeLambdaContext())

    [request] = moto.recorded_targets("CreateTrainingJob")
    assert request["HyperParameters"] == {
        "epochs": "1",
        "user_id": "lea",
        "model_id": job_id,
        ARTIFACT_HYPERPARAMETER: ADAPTER_ARTIFACT,
    }


def test_warm_pools_keep_single_jobs_alive_and_take_jobs_before_batches(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARM_POOL_KEEP_ALIVE_S", "1800")
    [first] = _submit(world, "kim")
    launcher.handler({"sweep": True}, FakeLambdaContext())
    warm = training_job_name(TRAINING_JOB_PREFIX, "kim", first)
    described = world.client("sagemaker").describe_training_job(TrainingJobName=warm)
    assert described["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 1800

    # The first job ended and left its instance warm (moto keeps no warm pools: SageMaker's
    # answer is put in the listing). A backlog long enough to batch builds up meanwhile.
    listed: list[dict[str, Any]] = []

    def warm_pool_listing(parsed: dict[str, Any], **_: Any) -> None:
        listed.append(dict(parsed.get("ResponseMetadata", {})))
        for summary in parsed["TrainingJobSummaries"]:
            if summary["TrainingJobName"] == warm:
                summary["WarmPoolStatus"] = {"Status": "Available"}

    monkeypatch.setenv("BATCH_THRESHOLD", "4")
    monkeypatch.setenv("BATCH_TASKS", "4")
    backlog = _submit(world, "kim", count=5)
    moto.restart_recording()
    sagemaker = clients.sagemaker()
    sagemaker.meta.events.register("after-call.sagemaker.ListTrainingJobs", warm_pool_listing)
    try:
        report = launcher.handler({"sweep": True}, FakeLambdaContext())
    finally:
        sagemaker.meta.events.unregister("after-call.sagemaker.ListTrainingJobs", warm_pool_listing)

    # One pool: the oldest queued job runs alone on it, the next four as one batch.
    assert len(listed) == 1
    [listing] = moto.recorded_targets("ListTrainingJobs")
    assert listing["WarmPoolStatusEquals"] == "Available"
    single = training_job_name(TRAINING_JOB_PREFIX, "kim", backlog[0])
    [batch] = [name for name in report["started"] if name != single]
    assert report["started"][0] == single and is_batch_name(TRAINING_JOB_PREFIX, batch)
    requests = {
        body["TrainingJobName"]: body for body in moto.recorded_targets("CreateTrainingJob")
    }
    assert requests[single]["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 1800
    # A batch needs more than one instance: no warm pool for it, and no keep-alive.
    assert "KeepAlivePeriodInSeconds" not in requests[batch]["ResourceConfig"]


def test_a_long_backlog_runs_as_one_multi_instance_job_with_a_task_manifest(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_THRESHOLD", "4")
    monkeypatch.setenv("BATCH_TASKS", "4")
    monkeypatch.setenv("BATCH_INSTANCES", "2")
    job_ids = _submit(world, "ivy", count=6)

    report = launcher.handler({"sweep": True}, FakeLambdaContext())

    # 6 queued >= 4: one batch of the 4 oldest; the 2 left are under the threshold.
    store = _store(world)
    jobs = [store.get("ivy", job_id) for job_id in job_ids]
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
    # Each task may run as long as a single job; a host runs its share one after another.
    assert described["StoppingCondition"]["MaxRuntimeInSeconds"] == 2 * 3600
    assert described["RoleArn"] == world.batch_role_arn
    # The container moves its tasks' data itself.
    assert described["EnableNetworkIsolation"] is False
    assert {task["output_uri"].rsplit("/", 1)[-1] for task in tasks} == {"model.tar.gz"}
    assert {task["failure_uri"].rsplit("/", 1)[-1] for task in tasks} == {"failure.txt"}
