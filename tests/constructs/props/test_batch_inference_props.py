"""NeuronBatchInferenceProps: defaults from the instance catalog, and every problem named."""

from __future__ import annotations

from typing import Any

import pytest

from inferfleet.constructs.neuron_instances import NEURON_INSTANCE_TYPES
from inferfleet.constructs.props.batch_inference import (
    BATCH_TRANSFORM_INSTANCE_TYPES,
    MAX_NAME_LENGTH,
    NeuronBatchInferenceProps,
    schedule_problem,
)


def job(**changes: Any) -> NeuronBatchInferenceProps:
    fields: dict[str, Any] = {
        "name": "duplicates",
        "model_artifact": "s3://models/pair/model.tar.gz",
        "input_prefix": "s3://data/pairs/",
        "output_prefix": "s3://data/scores/",
    }
    return NeuronBatchInferenceProps(**{**fields, **changes})


def fields_of(props: NeuronBatchInferenceProps) -> list[str]:
    return [problem.field for problem in props.problems()]


def test_defaults_are_one_inf2_xlarge_with_a_request_per_neuron_core() -> None:
    props = job()
    assert props.problems() == []
    assert props.instance_type == "ml.inf2.xlarge" and props.instance_count == 1
    assert props.concurrency == NEURON_INSTANCE_TYPES["inf2.xlarge"].neuron_cores == 2
    assert job(instance_type="ml.inf2.48xlarge").concurrency == 24


def test_batch_transform_types_are_the_inf2_and_trn1_entries_of_the_catalog() -> None:
    assert set(BATCH_TRANSFORM_INSTANCE_TYPES) == {
        "ml.inf2.xlarge",
        "ml.inf2.8xlarge",
        "ml.inf2.24xlarge",
        "ml.inf2.48xlarge",
        "ml.trn1.2xlarge",
        "ml.trn1.32xlarge",
    }


@pytest.mark.parametrize(
    ("instance_type", "message"),
    [
        ("inf2.xlarge", "SageMaker names it ml.inf2.xlarge"),
        ("ml.trn2.48xlarge", "Batch Transform on Neuron offers ml.inf2.xlarge"),
        ("ml.g5.xlarge", "not a Batch Transform Neuron instance type"),
    ],
)
def test_unsupported_instance_types_say_what_to_use(instance_type: str, message: str) -> None:
    (problem,) = job(instance_type=instance_type).problems()
    assert problem.field == "instance_type" and message in problem.message


@pytest.mark.parametrize(
    "expression", ["rate(7 days)", "rate(1 day)", "rate(30 minutes)", "cron(0 3 ? * MON *)"]
)
def test_schedules_that_parse(expression: str) -> None:
    assert schedule_problem(expression) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("weekly", "does not parse"),
        ("rate(7 day)", "say rate(7 days)"),
        ("rate(1 days)", "say rate(1 day)"),
        ("rate(0 days)", "at least 1"),
        ("rate(2 weeks)", "does not parse"),
        ("cron(0 3 * * MON)", "has 6 fields"),
        ("cron(0 3 * * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 3 ? * MON% *)", "day-of-week field"),
    ],
)
def test_schedules_that_do_not_parse_say_why(expression: str, message: str) -> None:
    (problem,) = job(schedule=expression).problems()
    assert problem.field == "schedule" and message in problem.message


def test_an_output_prefix_inside_the_input_and_the_reverse_are_refused() -> None:
    inside = job(output_prefix="s3://data/pairs/scores/").problems()
    assert [(p.field, "inside input_prefix" in p.message) for p in inside] == [
        ("output_prefix", True)
    ]
    around = job(input_prefix="s3://data/scores/pairs/").problems()
    assert [(p.field, "inside output_prefix" in p.message) for p in around] == [
        ("input_prefix", True)
    ]
    assert job(output_prefix="s3://other/pairs/").problems() == []  # another bucket
    assert job(output_prefix="s3://data/pairs-scored/").problems() == []  # a sibling


def test_locations_must_be_s3_prefixes_and_a_tar_gz() -> None:
    props = job(
        model_artifact="s3://models/pair/",
        input_prefix="s3://data/pairs",
        output_prefix="/tmp/out/",
    )
    assert fields_of(props) == ["model_artifact", "input_prefix", "output_prefix"]


def test_the_name_must_leave_room_for_the_run_id_in_transform_job_names() -> None:
    assert job(name="a" * MAX_NAME_LENGTH).problems() == []
    (problem,) = job(name="a" * (MAX_NAME_LENGTH + 1)).problems()
    assert problem.field == "name" and f"allow {MAX_NAME_LENGTH}" in problem.message
    assert fields_of(job(name="Dupes_1")) == ["name"]


def test_numbers_out_of_range() -> None:
    props = job(
        instance_count=0,
        max_payload_mb=101,
        invocations_max_retries=4,
        max_attempts=10,
        max_concurrent_transforms=3,
        late_after_hours=30,
        price_per_instance_hour=0,
    )
    assert sorted(fields_of(props)) == sorted(
        [
            "instance_count",
            "max_payload_mb",
            "invocations_max_retries",
            "max_attempts",
            "max_concurrent_transforms",
            "late_after_hours",
            "price_per_instance_hour",
        ]
    )
