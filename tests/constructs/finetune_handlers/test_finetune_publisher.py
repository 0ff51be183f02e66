"""The publisher against moto: artifacts to the MME prefix, terminal states, events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from finetune_world import (
    EVENT_SOURCE,
    MODEL_PREFIX,
    FakeLambdaContext,
    FinetuneWorld,
)
from moto_server import MotoServer

from inferfleet.constructs.finetune_handlers import launcher, publisher, register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.layout import batch_task_artifact_key
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
    launcher.handler({"source": "aws.events"}, FakeLambdaContext())
    return job_ids


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


def test_a_completed_job_is_published_to_the_mme_prefix_and_announced(
    world: FinetuneWorld, moto: MotoServer, app_events: Any
) -> None:
    [job_id] = _launch(world, "alice", model_id="poems-v1")
    job = _store(world).get(job_id)
    world.write_training_output(job.training_job_name)

    result = publisher.handler(world.training_job_event(job.training_job_name), FakeLambdaContext())

    assert result == {"ended": [job_id]}
    key = f"{MODEL_PREFIX}alice/poems-v1.tar.gz"
    body = world.client("s3").get_object(Bucket=world.model_bucket, Key=key)["Body"].read()
    assert body == f"model of {job.training_job_name}".encode()
    job = _store(world).get(job_id)
    assert job.status is JobStatus.READY
    assert job.artifact_url == f"s3://{world.model_bucket}/{key}"
    [model] = _store(world).models_of("alice")
    assert model["model_id"] == "poems-v1" and model["artifact_url"] == job.artifact_url
    assert _store(world).running_count() == 0
    [event] = app_events()
    assert event["detail-type"] == MODEL_READY_DETAIL_TYPE
    assert event["detail"]["target_model"] == "alice/poems-v1.tar.gz"


def test_a_failed_training_job_ends_failed_with_its_reason(
    world: FinetuneWorld, moto: MotoServer, app_events: Any
) -> None:
    [job_id] = _launch(world, "bob")
    name = _store(world).get(job_id).training_job_name
    reason = "AlgorithmError: loss became NaN at step 120"

    event = world.training_job_event(name, status="Failed", failure_reason=reason)
    assert publisher.handler(event, FakeLambdaContext()) == {"ended": [job_id]}

    job = _store(world).get(job_id)
    assert job.status is JobStatus.FAILED and job.error == reason
    assert _store(world).models_of("bob") == []
    assert _store(world).running_count() == 0
    [announced] = app_events()
    assert announced["detail-type"] == JOB_FAILED_DETAIL_TYPE
    assert announced["detail"]["error"] == reason


def test_a_stopped_training_job_ends_failed(world: FinetuneWorld, moto: MotoServer) -> None:
    [job_id] = _launch(world, "cy")
    name = _store(world).get(job_id).training_job_name

    publisher.handler(world.training_job_event(name, status="Stopped"), FakeLambdaContext())

    job = _store(world).get(job_id)
    assert job.status is JobStatus.FAILED and job.error == "training job stopped"


def test_a_repeated_state_change_changes_nothing(
    world: FinetuneWorld, moto: MotoServer, app_events: Any
) -> None:
    job_ids = _launch(world, "di", count=2)
    names = [_store(world).get(job_id).training_job_name for job_id in job_ids]
    world.write_training_output(names[0])
    event = world.training_job_event(names[0])
    publisher.handler(event, FakeLambdaContext())

    assert publisher.handler(event, FakeLambdaContext()) == {"ended": []}
    # A late, contradicting delivery does not reopen a finished job either.
    failed = world.training_job_event(names[0], status="Failed", failure_reason="late")
    assert publisher.handler(failed, FakeLambdaContext()) == {"ended": []}

    assert _store(world).get(job_ids[0]).status is JobStatus.READY
    # One slot freed, by the one job that ended; the other still runs.
    assert _store(world).running_count() == 1
    assert len(app_events()) == 1


def test_a_batch_publishes_every_task_from_its_own_output(
    world: FinetuneWorld, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_THRESHOLD", "3")
    monkeypatch.setenv("BATCH_TASKS", "3")
    job_ids = _launch(world, "eve", count=3)
    name = _store(world).get(job_ids[0]).training_job_name
    s3 = world.client("s3")
    for job_id in job_ids:  # what the fine-tune container uploads for each task
        s3.put_object(
            Bucket=world.data_bucket,
            Key=batch_task_artifact_key(name, job_id),
            Body=job_id.encode(),
        )

    assert publisher.handler(world.training_job_event(name), FakeLambdaContext()) == {
        "ended": job_ids
    }

    for job_id in job_ids:
        key = f"{MODEL_PREFIX}eve/{job_id}.tar.gz"
        body = s3.get_object(Bucket=world.model_bucket, Key=key)["Body"].read()
        assert body == job_id.encode()
        assert _store(world).get(job_id).status is JobStatus.READY
    assert len(_store(world).models_of("eve")) == 3
    assert _store(world).running_count() == 0
