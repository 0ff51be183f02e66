"""Batch jobs in the fleet plan: defaults, regions, stack outputs, and every problem with its
line in the fleet file."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferfleet.cli.main import main
from inferfleet.constructs.props.batch_inference import MAX_NAME_LENGTH
from inferfleet.infra import names
from inferfleet.infra.plan import load_fleet_plan
from inferfleet.infra.spec import FleetSpecError

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAD = """\
name: shop
regions:
  - {name: us-east-1, availability_zones: [us-east-1a, us-east-1b]}
  - {name: us-west-2, availability_zones: [us-west-2a, us-west-2b]}
services:
  intent:
    kind: classifier
    model: {parameters_b: 0.1}
    pools: [{instance_type: inf2.xlarge, tensor_parallel: 1, max: 2}]
    container: {image: public.ecr.aws/example/server:1}
batch_jobs:
"""
JOB = """\
  - name: {name}
    model_artifact: s3://models/pair/model.tar.gz
    input_prefix: {input}
    output_prefix: s3://data/scores/
    instance_type: {instance_type}
    schedule: {schedule}
    regions: {regions}
"""


def job(
    name: str = "dupes",
    input: str = "s3://data/pairs/",
    instance_type: str = "ml.inf2.xlarge",
    schedule: str = "rate(7 days)",
    regions: str = "[us-west-2]",
) -> str:
    return JOB.format(
        name=name, input=input, instance_type=instance_type, schedule=schedule, regions=regions
    )


def fleet(tmp_path: Path, *jobs: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(HEAD + "".join(jobs))
    return path


def test_a_job_runs_where_it_says_with_its_props_planned_once(tmp_path: Path) -> None:
    plan = load_fleet_plan(fleet(tmp_path, job(), job(name="other", regions="null")))
    dupes, other = plan.batch_jobs
    assert dupes.regions == ("us-west-2",) and other.regions == ("us-east-1",)  # the first
    west = plan.region("us-west-2")
    assert west.batch_jobs == (dupes,) and plan.region("us-east-1").batch_jobs == (other,)
    assert dupes.props.name == "shop-dupes" and dupes.props.concurrency == 2
    assert dupes.state_machine_output == names.batch_state_machine("dupes")
    assert dupes.state_machine_output in west.outputs
    assert plan.batch_job("other") is other


@pytest.mark.parametrize(
    ("jobs", "line", "field", "message"),
    [
        (
            (job(instance_type="inf2.xlarge"),),
            16,
            "batch_jobs[0].instance_type",
            "SageMaker names it ml.inf2.xlarge",
        ),
        (
            (job(instance_type="ml.g5.xlarge"),),
            16,
            "batch_jobs[0].instance_type",
            "Batch Transform on Neuron offers ml.inf2.xlarge",
        ),
        ((job(schedule="every monday"),), 17, "batch_jobs[0].schedule", "does not parse"),
        (
            (job(input="s3://data/scores/in/"),),
            14,
            "batch_jobs[0].input_prefix",
            "inside output_prefix",
        ),
        ((job(input="s3://data/"),), 15, "batch_jobs[0].output_prefix", "inside input_prefix"),
        ((job(), job()), 19, "batch_jobs[1].name", "also the name of batch_jobs[0]"),
        (
            (job(name="a-b"), job(name="a--b")),
            19,
            "batch_jobs[1].name",
            "'a--b' and batch_jobs[0] ('a-b') give one stack output, BatchABStateMachineArn",
        ),
        (
            (job(regions="[us-west-2, eu-west-1]"),),
            18,
            "batch_jobs[0].regions[1]",
            "eu-west-1 is not a region of the fleet; use one of us-east-1, us-west-2",
        ),
    ],
)
def test_validate_names_the_line_the_field_and_the_fix(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    jobs: tuple[str, ...],
    line: int,
    field: str,
    message: str,
) -> None:
    path = fleet(tmp_path, *jobs)
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--config", str(path)])
    assert exited.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{path}:{line}: {field}: " in err
    assert message in err
    assert "Traceback" not in err


def test_the_example_has_the_weekly_duplicate_scorer_and_both_copies_agree() -> None:
    assert (REPO_ROOT / "fleet.yaml").read_bytes() == (
        REPO_ROOT / "infra" / "example_fleet.yaml"
    ).read_bytes()
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    (dupes,) = plan.batch_jobs
    assert dupes.props.schedule.startswith("cron(") and dupes.props.schedule.endswith("MON *)")
    assert dupes.props.instance_type == "ml.inf2.xlarge"


def test_emulator_mode_leaves_the_batch_jobs_out_and_says_so(tmp_path: Path) -> None:
    plan = load_fleet_plan(fleet(tmp_path, job()), emulator=True)
    west = plan.region("us-west-2")
    assert west.batch_jobs == ()
    assert any("batch jobs" in item for item in west.left_out)


def test_a_bad_model_artifact_is_a_schema_problem_with_its_hint(tmp_path: Path) -> None:
    path = fleet(tmp_path, job().replace("s3://models/pair/model.tar.gz", "models/pair.tar.gz"))
    with pytest.raises(FleetSpecError, match=r"fleet.yaml:13: batch_jobs\[0\].model_artifact: "):
        load_fleet_plan(path)


def test_a_long_fleet_and_job_name_gets_a_bounded_stable_prefix(tmp_path: Path) -> None:
    path = fleet(tmp_path, job(name="duplicate-pairs-weekly"))
    path.write_text(path.read_text().replace("name: shop\n", "name: shopping-assistant-eu\n"))
    first = load_fleet_plan(path).batch_job("duplicate-pairs-weekly").props
    again = load_fleet_plan(path).batch_job("duplicate-pairs-weekly").props
    assert len(first.name) <= MAX_NAME_LENGTH and first.name == again.name
    assert first.name.startswith("shopping-assistant-eu") and first.problems() == []
    assert names.batch_job_prefix("shop", "dupes") == "shop-dupes"  # short names stay readable
