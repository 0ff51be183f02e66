"""The publisher against moto: each version under its own key and an atomic switch of the
user's record, a terminal state for every job whatever the training job left, slots always
freed, the sweep's repair of state changes that never came, and events."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from finetune_world import (
    EVENT_SOURCE,
    MODEL_PREFIX,
    FakeLambdaContext,
    FinetuneWorld,
)
from moto_server import MotoServer

from inferfleet.constructs.finetune_handlers import clients, launcher, publisher, register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.layout import (
    batch_task_artifact_key,
    batch_task_failure_key,
)
from inferfleet.constructs.finetune_handlers.schema import (
    JOB_FAILED_DETAIL_TYPE,
    MODEL_READY_DETAIL_TYPE,
    JobStatus,
)


def _store(world: FinetuneWorld) -> JobStore:
    return JobStore(world.client("dynamodb"), world.jobs_table, world.models_table)


def _launch(world: FinetuneWorld, user: str, count: int = 1, **manifest: Any) -> list[str]:
    job_ids = []
    for _ in range(count):
        body = json.dumps({"hyperparameters": {"epochs": 2}, **manifest}).encode()
        job_id, event = world.upload(user, manifest=body)
        register.handler(event, FakeLambdaContext())
        job_ids.append(job_id)
    launcher.handler({"sweep": True}, FakeLambdaContext())
    return job_ids


def _training_job(world: FinetuneWorld, user: str, job_id: str) -> str:
    return _store(world).get(user, job_id).training_job_name


def _complete(world: FinetuneWorld, user: str, job_id: str) -> dict[str, Any]:
    """The training job wrote its model and told EventBridge; the publisher hears of it."""
    name = _training_job(world, user, job_id)
    world.write_training_output(name)
    return publisher.handler(world.training_job_event(name), FakeLambdaContext())


def _version_key(user: str, model: str, job_id: str) -> str:
    return f"{MODEL_PREFIX}{user}/{model}/{job_id}.tar.gz"


@pytest.fixture
def app_events(world: FinetuneWorld) -> Any:
    """An SQS queue subscribed to the publisher's events on the default bus."""
    sqs = world.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"app-{world.suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events = world.client("events")
    events.put_rule(Name=f"app-{world.suffix}", EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
    events.put_targets(Rule=f"app-{world.suffix}", Targets=[{"Id": "app", "Arn": queue_arn}])

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        return [json.loads(message["Body"]) for message in messages.get("Messages", [])]

    return received


def test_a_completed_job_is_published_as_its_own_version_and_announced(
    world: FinetuneWorld, moto: MotoServer, app_events: Any
) -> None:
    [job_id] = _launch(world, "alice", model_id="poems-v1")
    name = _training_job(world, "alice", job_id)
    world.write_training_output(name)

    result = publisher.handler(world.training_job_event(name), FakeLambdaContext())

    assert result == {"ended": [f"alice/{job_id}"]}
    key = _version_key("alice", "poems-v1", job_id)
    body = world.client("s3").get_object(Bucket=world.model_bucket, Key=key)["Body"].read()
    assert body == f"model of {name}".encode()
    job = _store(world).get("alice", job_id)
    assert job.status is JobStatus.READY
    assert job.artifact_url == f"s3://{world.model_bucket}/{key}"
    assert job.target_model == f"alice/poems-v1/{job_id}.tar.gz"
    [model] = _store(world).models_of("alice")
    assert (model["model_id"], model["version"], model["target_model"]) == (
        "poems-v1",
        job_id,
        job.target_model,
    )
    assert _store(world).running_count() == 0
    [event] = app_events()
    assert event["detail-type"] == MODEL_READY_DETAIL_TYPE
    assert event["detail"]["target_model"] == job.target_model


def test_a_new_version_is_switched_to_atomically_and_the_old_one_stays_whole(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    s3 = world.client("s3")
    [first] = _launch(world, "bo", model_id="style")
    world.write_training_output(_training_job(world, "bo", first))
    publisher.handler(
        world.training_job_event(_training_job(world, "bo", first)), FakeLambdaContext()
    )
    [second] = _launch(world, "bo", model_id="style")
    world.write_training_output(_training_job(world, "bo", second))

    publisher.handler(
        world.training_job_event(_training_job(world, "bo", second)), FakeLambdaContext()
    )

    [model] = _store(world).models_of("bo")
    assert model["version"] == second and model["target_model"] == f"bo/style/{second}.tar.gz"
    # The version a reader (or an endpoint's cache) had is untouched, under its own key.
    old = s3.get_object(Bucket=world.model_bucket, Key=_version_key("bo", "style", first))
    assert old["Body"].read() == f"model of {_training_job(world, 'bo', first)}".encode()


def test_an_older_version_finishing_last_does_not_replace_the_newer(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    older, newer = _launch(world, "cy", count=2, model_id="style")
    for job_id in (newer, older):  # the newer submission's training ends first
        _complete(world, "cy", job_id)

    assert {_store(world).get("cy", job).status for job in (older, newer)} == {JobStatus.READY}
    [model] = _store(world).models_of("cy")
    assert model["version"] == newer
    assert _store(world).running_count() == 0


def test_a_failed_training_job_ends_failed_with_its_reason(
    world: FinetuneWorld, moto: MotoServer, app_events: Any
) -> None:
    [job_id] = _launch(world, "bob")
    name = _training_job(world, "bob", job_id)
    reason = "AlgorithmError: loss became NaN at step 120"

    event = world.training_job_event(name, status="Failed", failure_reason=reason)
    assert publisher.handler(event, FakeLambdaContext()) == {"ended": [f"bob/{job_id}"]}

    job = _store(world).get("bob", job_id)
    assert job.status is JobStatus.FAILED and job.error == reason
    assert _store(world).models_of("bob") == []
    assert _store(world).running_count() == 0
    [announced] = app_events()
    assert announced["detail-type"] == JOB_FAILED_DETAIL_TYPE
    assert announced["detail"]["error"] == reason


def test_a_stopped_training_job_ends_failed(world: FinetuneWorld, moto: MotoServer) -> None:
    [job_id] = _launch(world, "cy")
    name = _training_job(world, "cy", job_id)

    publisher.handler(world.training_job_event(name, status="Stopped"), FakeLambdaContext())

    job = _store(world).get("cy", job_id)
    assert job.status is JobStatus.FAILED and job.error == "training job stopped"


def _without_artifacts(event: dict[str, Any]) -> dict[str, Any]:
    event["detail"].pop("ModelArtifacts")
    return event


def _artifact_elsewhere(event: dict[str, Any]) -> dict[str, Any]:
    event["detail"]["ModelArtifacts"]["S3ModelArtifacts"] = "s3://someone-else/model.tar.gz"
    return event


@pytest.mark.parametrize(
    ("spoil", "write_output", "reason"),
    [
        (_without_artifacts, True, "completed without a model artifact"),
        (lambda event: event, False, "is missing"),
        (_artifact_elsewhere, True, "outside this queue's training output"),
    ],
)
def test_a_completion_without_a_usable_artifact_fails_the_job_and_frees_its_slot(
    world: FinetuneWorld, moto: MotoServer, app_events: Any, spoil, write_output, reason
) -> None:
    [job_id] = _launch(world, "dan")
    name = _training_job(world, "dan", job_id)
    if write_output:
        world.write_training_output(name)
    event = spoil(world.training_job_event(name))

    for _ in range(2):  # EventBridge's redelivery changes nothing
        publisher.handler(event, FakeLambdaContext())

    job = _store(world).get("dan", job_id)
    assert job.status is JobStatus.FAILED and reason in job.error
    assert _store(world).models_of("dan") == []
    assert _store(world).running_count() == 0
    assert [e["detail-type"] for e in app_events()] == [JOB_FAILED_DETAIL_TYPE]


class _Empty:
    def stream(self, **_: Any):
        yield b""


def test_a_missing_artifact_s3_answers_with_403_fails_the_job_too(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    """The publisher may not list the bucket, so S3 says 403 where it would say 404."""
    [job_id] = _launch(world, "deb")

    def forbidden(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 403, {"x-amz-request-id": "t"}, _Empty())

    s3 = clients.s3()
    s3.meta.events.register_first("before-send.s3.HeadObject", forbidden)
    try:
        _complete(world, "deb", job_id)
    finally:
        s3.meta.events.unregister("before-send.s3.HeadObject", forbidden)

    job = _store(world).get("deb", job_id)
    assert job.status is JobStatus.FAILED and "is missing" in job.error
    assert _store(world).running_count() == 0


def test_completions_without_artifacts_never_jam_the_queue(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More such completions than slots: launching goes on."""
    monkeypatch.setenv("MAX_RUNNING_JOBS", "2")
    for _ in range(3):
        for job in _store(world).with_status(JobStatus.TRAINING):
            publisher.handler(world.training_job_event(job.training_job_name), FakeLambdaContext())
        _launch(world, "eve", count=2)
    assert len(_store(world).with_status(JobStatus.TRAINING)) == 2
    assert len(_store(world).with_status(JobStatus.FAILED)) == 4


def test_a_counter_already_at_zero_does_not_keep_a_job_from_ending(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    [job_id] = _launch(world, "dot")
    world.client("dynamodb").update_item(
        TableName=world.jobs_table,
        Key={"user_id": {"S": "#queue/"}, "job_id": {"S": "#capacity/"}},
        UpdateExpression="SET running = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )

    assert _complete(world, "dot", job_id) == {"ended": [f"dot/{job_id}"]}

    assert _store(world).get("dot", job_id).status is JobStatus.READY
    assert _store(world).running_count() == 0


def test_a_repeated_state_change_changes_nothing(
    world: FinetuneWorld, moto: MotoServer, app_events: Any
) -> None:
    job_ids = _launch(world, "di", count=2)
    names = [_training_job(world, "di", job_id) for job_id in job_ids]
    world.write_training_output(names[0])
    event = world.training_job_event(names[0])
    publisher.handler(event, FakeLambdaContext())

    assert publisher.handler(event, FakeLambdaContext()) == {"ended": []}
    # A late, contradicting delivery does not reopen a finished job either.
    failed = world.training_job_event(names[0], status="Failed", failure_reason="late")
    assert publisher.handler(failed, FakeLambdaContext()) == {"ended": []}

    assert _store(world).get("di", job_ids[0]).status is JobStatus.READY
    # One slot freed, by the one job that ended; the other still runs.
    assert _store(world).running_count() == 1
    assert len(app_events()) == 1


def _launch_batch(world: FinetuneWorld, monkeypatch: pytest.MonkeyPatch, user: str) -> list[str]:
    monkeypatch.setenv("BATCH_THRESHOLD", "3")
    monkeypatch.setenv("BATCH_TASKS", "3")
    return _launch(world, user, count=3)


def test_a_batch_publishes_every_task_from_its_own_output(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_ids = _launch_batch(world, monkeypatch, "eve")
    name = _training_job(world, "eve", job_ids[0])
    s3 = world.client("s3")
    for job_id in job_ids:  # what the fine-tune container uploads for each task
        s3.put_object(
            Bucket=world.data_bucket,
            Key=batch_task_artifact_key(name, "eve", job_id),
            Body=job_id.encode(),
        )

    assert publisher.handler(world.training_job_event(name), FakeLambdaContext()) == {
        "ended": [f"eve/{job_id}" for job_id in job_ids]
    }

    for job_id in job_ids:
        key = _version_key("eve", job_id, job_id)
        body = s3.get_object(Bucket=world.model_bucket, Key=key)["Body"].read()
        assert body == job_id.encode()
        assert _store(world).get("eve", job_id).status is JobStatus.READY
    assert len(_store(world).models_of("eve")) == 3
    assert _store(world).running_count() == 0


def test_a_batch_task_that_failed_or_left_nothing_fails_alone(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, app_events: Any
) -> None:
    trained, refused, silent = _launch_batch(world, monkeypatch, "fox")
    name = _training_job(world, "fox", trained)
    s3 = world.client("s3")
    s3.put_object(
        Bucket=world.data_bucket, Key=batch_task_artifact_key(name, "fox", trained), Body=b"ok"
    )
    reason = "PathError: data key 'uploads/fox/x/data/../../evil' leaves the task's folder"
    s3.put_object(
        Bucket=world.data_bucket,
        Key=batch_task_failure_key(name, "fox", refused),
        Body=reason.encode(),
    )

    publisher.handler(world.training_job_event(name), FakeLambdaContext())

    store = _store(world)
    assert store.get("fox", trained).status is JobStatus.READY
    assert (store.get("fox", refused).status, store.get("fox", refused).error) == (
        JobStatus.FAILED,
        reason,
    )
    silent_job = store.get("fox", silent)
    assert silent_job.status is JobStatus.FAILED and "left no artifact" in silent_job.error
    # The models table lists exactly the jobs that are READY.
    assert [model["version"] for model in store.models_of("fox")] == [trained]
    assert store.running_count() == 0
    assert sorted(e["detail-type"] for e in app_events()) == sorted(
        [MODEL_READY_DETAIL_TYPE, JOB_FAILED_DETAIL_TYPE, JOB_FAILED_DETAIL_TYPE]
    )


def test_the_sweep_ends_jobs_whose_state_change_never_came(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    """moto's training jobs complete at once; no state change reaches the publisher."""
    completed, failed = _launch(world, "gil", count=2)
    world.write_training_output(_training_job(world, "gil", completed))
    missing = _launch(world, "gil")[0]
    store = _store(world)
    # A job whose training job SageMaker no longer knows of.
    world.client("dynamodb").update_item(
        TableName=world.jobs_table,
        Key={"user_id": {"S": "gil"}, "job_id": {"S": missing}},
        UpdateExpression="SET training_job_name = :n",
        ExpressionAttributeValues={":n": {"S": "ift-gone"}},
    )

    assert publisher.handler({"reconcile": True}, FakeLambdaContext())["ended"] == [
        f"gil/{missing}"
    ]  # the others ended moments ago: their state change may still be on its way
    later = publisher.build_publisher(FakeLambdaContext())
    later.now = lambda: time.time() + 3600
    report = later.reconcile()

    assert sorted(report.ended) == sorted([f"gil/{completed}", f"gil/{failed}"])
    assert store.get("gil", completed).status is JobStatus.READY
    assert store.get("gil", failed).status is JobStatus.FAILED  # its artifact never came
    assert store.get("gil", missing).error == "training job ift-gone does not exist"
    assert store.running_count() == 0
    assert later.reconcile().ended == []
