"""Registration against moto: one job per upload of a user, however often S3 tells us about it,
and a job row for every upload, FAILED with the reason when it cannot run."""

import json

import pytest
from finetune_world import FakeLambdaContext, FinetuneWorld
from moto_server import MotoServer

from inferfleet.constructs.finetune_handlers import register
from inferfleet.constructs.finetune_handlers.jobs import JobStore
from inferfleet.constructs.finetune_handlers.layout import manifest_key
from inferfleet.constructs.finetune_handlers.register import MAX_MANIFEST_BYTES
from inferfleet.constructs.finetune_handlers.schema import JobStatus


def _store(world: FinetuneWorld) -> JobStore:
    return JobStore(world.client("dynamodb"), world.jobs_table, world.models_table)


def _job_items(world: FinetuneWorld) -> list[dict]:
    items = world.client("dynamodb").scan(TableName=world.jobs_table)["Items"]
    return [item for item in items if not item["user_id"]["S"].startswith("#")]


def test_duplicate_s3_events_register_one_job(world: FinetuneWorld) -> None:
    job_id, event = world.upload("alice", hyperparameters={"epochs": 3, "lr": "1e-4"})
    duplicate = json.loads(json.dumps(event))
    duplicate["Records"][0]["s3"]["object"]["sequencer"] = "0000000000000001"

    for delivered in (event, event, duplicate):
        result = register.handler(delivered, FakeLambdaContext())
        assert result["registered"] == [f"alice/{job_id}"]

    assert len(_job_items(world)) == 1
    job = _store(world).get("alice", job_id)
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

    result = register.handler(event, FakeLambdaContext())

    assert result["duplicates"] == [f"bob/{job_id}"] and result["registered"] == []
    assert [item["job_id"]["S"] for item in _job_items(world)] == [job_id]


def test_the_same_job_id_from_two_users_is_two_jobs(world: FinetuneWorld) -> None:
    """A user picks their job ids: another user's upload with the same id is not a duplicate."""
    for user, epochs in (("alice", 1), ("mallory", 2)):
        _, event = world.upload(user, "shared-id", hyperparameters={"epochs": epochs})
        result = register.handler(event, FakeLambdaContext())
        assert result["registered"] == [f"{user}/shared-id"]

    alice, mallory = (_store(world).get(user, "shared-id") for user in ("alice", "mallory"))
    assert (alice.status, alice.hyperparameters) == (JobStatus.QUEUED, {"epochs": "1"})
    assert (mallory.status, mallory.hyperparameters) == (JobStatus.QUEUED, {"epochs": "2"})
    assert [job.job_id for job in _store(world).for_user("alice")] == ["shared-id"]


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b"\xff\xfe{}", "not JSON"),
        (b'{"epochs": 3}', "manifest fields epochs are unknown"),
        (b'{"model_id": ".."}', "model_id '..' is not an id"),
        (b'{"model_id": "a/b"}', "model_id 'a/b' is not an id"),
        (b'{"model_id": "style\\n"}', "model_id 'style\\n' is not an id"),
        (b'{"hyperparameters": [1]}', "hyperparameters must be an object"),
        (b'{"hyperparameters": {"lr": {"x": 1}}}', "hyperparameter lr: values are strings"),
        (b'{"hyperparameters": {"epochs": 1' + b"0" * 5000 + b"}}", "not JSON"),
    ],
)
def test_an_unusable_manifest_registers_a_failed_job_with_the_reason(
    world: FinetuneWorld, manifest: bytes, reason: str
) -> None:
    job_id, event = world.upload("carol", manifest=manifest)

    result = register.handler(event, FakeLambdaContext())

    assert result["registered"] == [f"carol/{job_id}"]
    job = _store(world).get("carol", job_id)
    assert job.status is JobStatus.FAILED
    assert reason in job.error


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {"base_model": "s3://attacker/model"},
        {"sagemaker_program": "evil.py", "sagemaker_submit_directory": "s3://attacker/code"},
        {"SageMaker_Region": "us-east-1"},
        {"inferfleet_tasks_manifest": "s3://attacker/tasks.json"},
        {"user_id": "mallory"},
    ],
)
def test_hyperparameters_the_queue_sets_are_refused(
    world: FinetuneWorld, hyperparameters: dict
) -> None:
    job_id, event = world.upload("dee", hyperparameters={**hyperparameters, "epochs": 1})

    register.handler(event, FakeLambdaContext())

    job = _store(world).get("dee", job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == (
        f"hyperparameters {', '.join(sorted(hyperparameters))} are set by the queue; leave them out"
    )


@pytest.mark.parametrize(
    ("hyperparameters", "reason"),
    [
        ({"epochs": 11}, "epochs=11: this queue allows whole numbers 1..10"),
        ({"batch_size": 0}, "batch_size=0: this queue allows whole numbers 1..32"),
        ({"max_seq_len": "4096"}, "max_seq_len=4096: this queue allows whole numbers 8..2048"),
        ({"epochs": "2.5"}, "epochs=2.5"),
    ],
)
def test_costly_hyperparameters_are_bounded_by_the_queues_limits(
    world: FinetuneWorld, hyperparameters: dict, reason: str
) -> None:
    job_id, event = world.upload("eli", hyperparameters=hyperparameters)

    register.handler(event, FakeLambdaContext())

    job = _store(world).get("eli", job_id)
    assert job.status is JobStatus.FAILED and reason in job.error


def test_an_oversized_manifest_fails_without_being_read(
    world: FinetuneWorld, moto: MotoServer
) -> None:
    job_id, event = world.upload("fay", manifest=b" " * (10 * MAX_MANIFEST_BYTES) + b"{}")
    moto.restart_recording()

    register.handler(event, FakeLambdaContext())

    job = _store(world).get("fay", job_id)
    assert job.status is JobStatus.FAILED
    assert job.error == (
        f"manifest is {10 * MAX_MANIFEST_BYTES + 2} bytes; a manifest holds at most "
        f"{MAX_MANIFEST_BYTES}"
    )
    reads = [
        entry["method"]
        for entry in moto.recorded_requests()
        if entry["url"].split("?")[0].endswith(manifest_key("fay", job_id))
    ]
    assert reads == ["HEAD"]


@pytest.mark.parametrize(
    ("user", "job", "reason"),
    [
        ("..", "j1", "user id '..' is not an id"),
        ("bad user", "j1", "user id 'bad user' is not an id"),
        ("alice", ".", "job id '.' is not an id"),
        ("ålice", "j1", "user id 'ålice' is not an id"),
        ("alice", "x" * 65, "job id"),
    ],
)
def test_an_upload_under_ids_that_are_not_ids_becomes_a_failed_job(
    world: FinetuneWorld, user: str, job: str, reason: str
) -> None:
    _, event = world.upload(user, job)

    result = register.handler(event, FakeLambdaContext())

    assert result["registered"] == [f"{user}/{job}"]
    failed = _store(world).get(user, job)
    assert failed.status is JobStatus.FAILED and reason in failed.error


def test_a_manifest_deleted_before_it_was_read_becomes_a_failed_job(world: FinetuneWorld) -> None:
    job_id, event = world.upload("gus")
    world.client("s3").delete_object(Bucket=world.data_bucket, Key=manifest_key("gus", job_id))

    register.handler(event, FakeLambdaContext())

    job = _store(world).get("gus", job_id)
    assert job.status is JobStatus.FAILED and "deleted before it was read" in job.error


def test_keys_that_are_not_manifests_are_ignored(world: FinetuneWorld) -> None:
    world.client("s3").put_object(Bucket=world.data_bucket, Key="uploads/x/readme.txt", Body=b"")
    result = register.handler(world.s3_event("uploads/x/readme.txt"), FakeLambdaContext())
    assert result == {"registered": [], "duplicates": [], "skipped": 1}
    assert _job_items(world) == []
