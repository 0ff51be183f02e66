"""Registration against moto: one job per upload, however often S3 tells us about it."""

import json

from finetune_world import FakeLambdaContext, FinetuneWorld

from inferfleet.constructs.finetune_handlers import register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.schema import JobStatus


def _store(world: FinetuneWorld) -> JobStore:
    return JobStore(world.client("dynamodb"), world.jobs_table, world.models_table)


def _job_items(world: FinetuneWorld) -> list[dict]:
    items = world.client("dynamodb").scan(TableName=world.jobs_table)["Items"]
    return [item for item in items if not item["job_id"]["S"].startswith("#")]


def test_duplicate_s3_events_register_one_job(world: FinetuneWorld) -> None:
    job_id, event = world.upload("alice", hyperparameters={"epochs": 3, "lr": "1e-4"})
    duplicate = json.loads(json.dumps(event))
    duplicate["Records"][0]["s3"]["object"]["sequencer"] = "0000000000000001"

    for delivered in (event, event, duplicate):
        result = register.handler(delivered, FakeLambdaContext())
        assert result == {"registered": [job_id]}

    assert len(_job_items(world)) == 1
    job = _store(world).get(job_id)
    assert job is not None
    assert job.status is JobStatus.QUEUED
    assert job.user_id == "alice"
    assert job.model_id == job_id
    assert job.hyperparameters == {"epochs": "3", "lr": "1e-4"}
    assert job.data_uri == f"s3://{world.data_bucket}/uploads/alice/{job_id}/data/"


def test_duplicates_are_caught_by_the_table_even_without_the_idempotency_record(
    world: FinetuneWorld,
) -> None:
    job_id, event = world.upload("bob")
    register.handler(event, FakeLambdaContext())
    world.client("dynamodb").delete_table(TableName=world.idempotency_table)
    world.create_idempotency_table()

    register.handler(event, FakeLambdaContext())

    assert [item["job_id"]["S"] for item in _job_items(world)] == [job_id]


def test_a_bad_manifest_registers_a_failed_job_with_the_reason(world: FinetuneWorld) -> None:
    job_id, event = world.upload("carol", manifest=b"{not json")

    register.handler(event, FakeLambdaContext())

    job = _store(world).get(job_id)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.error is not None and "not JSON" in job.error


def test_keys_that_are_not_manifests_are_ignored(world: FinetuneWorld) -> None:
    world.client("s3").put_object(Bucket=world.data_bucket, Key="uploads/x/readme.txt", Body=b"")
    result = register.handler(world.s3_event("uploads/x/readme.txt"), FakeLambdaContext())
    assert result == {"registered": []}
    assert _job_items(world) == []


def test_hyperparameters_the_queue_sets_are_refused(world: FinetuneWorld) -> None:
    job_id, event = world.upload("dee", hyperparameters={"user_id": "mallory", "epochs": 1})

    register.handler(event, FakeLambdaContext())

    job = _store(world).get(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == "hyperparameters user_id are set by the queue"
