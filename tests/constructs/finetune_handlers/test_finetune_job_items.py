"""A job as a DynamoDB item and back: the attribute values the tables hold, and nothing else."""

from dataclasses import replace

import pytest

from inferfleet.constructs.finetune_handlers.jobs import Job, JobStatus

JOB = Job(
    user_id="ada",
    job_id="j1",
    model_id="poems",
    status=JobStatus.TRAINING,
    data_uri="s3://data/uploads/ada/j1/data/",
    created_at="2026-12-01T10:00:00.000000+00:00",
    hyperparameters={"epochs": "3", "lr": "0.0001"},
    attempts=2,
    training_job_name="ft-poems-1",
    task_index=0,
    lease_until=1_790_000_000,
)


def test_a_job_comes_back_from_its_item_as_it_went_in() -> None:
    item = JOB.to_item()

    assert item["status"] == {"S": "TRAINING"}
    assert item["attempts"] == {"N": "2"} and item["task_index"] == {"N": "0"}
    assert item["hyperparameters"] == {"M": {"epochs": {"S": "3"}, "lr": {"S": "0.0001"}}}
    assert "error" not in item and "artifact_url" not in item  # unset fields are left out
    assert Job.from_item(item) == JOB


def test_a_value_the_tables_do_not_hold_is_refused_before_any_write() -> None:
    with pytest.raises(TypeError, match="hold no float"):
        replace(JOB, hyperparameters={"lr": 0.0001}).to_item()  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no attribute of type BOOL"):
        Job.from_item({**JOB.to_item(), "archived": {"BOOL": True}})
