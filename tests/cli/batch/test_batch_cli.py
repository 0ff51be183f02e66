"""``batch run`` and ``batch status`` against moto's server: the state machine found from the
fleet plan and a real CloudFormation stack's outputs, runs started, followed and reported."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto_server import MotoServer, offline_aws_environment

from inferfleet.cli.main import main
from inferfleet.infra import names

FLEET = """\
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
  - name: dupes
    model_artifact: s3://shop-models/pair/model.tar.gz
    input_prefix: s3://shop-data/pairs/
    output_prefix: s3://shop-data/scores/
    schedule: rate(7 days)
"""
ROLE = "arn:aws:iam::123456789012:role/run"


@pytest.fixture
def deployed(moto: MotoServer, tmp_path: Path) -> dict[str, Any]:
    """The job's stack as far as the CLI reads it: the state machine and its output."""
    template = {
        "Resources": {
            "Run": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": ROLE,
                    "DefinitionString": json.dumps(
                        {"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}}
                    ),
                },
            }
        },
        "Outputs": {names.batch_state_machine("dupes"): {"Value": {"Ref": "Run"}}},
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName="shop-us-east-1", TemplateBody=json.dumps(template))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="shop-data")
    for name in ("a.jsonl", "b.jsonl", "day/c.jsonl"):
        s3.put_object(Bucket="shop-data", Key=f"pairs/{name}", Body=b'{"id": 1}\n')
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    outputs = cloudformation.describe_stacks(StackName="shop-us-east-1")["Stacks"][0]["Outputs"]
    return {"fleet": fleet, "machine": outputs[0]["OutputValue"], "server": moto, "s3": s3}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def test_no_wait_starts_the_state_machine_and_status_follows_the_run(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--config", str(deployed["fleet"]), "--job", "dupes",
            "--endpoint-url", deployed["server"].url)  # fmt: skip
    code, out, err = run(capsys, "batch", "run", *args, "--no-wait", "--json")
    assert code == 0, err
    started = json.loads(out)
    execution = started["execution_arn"]
    listed = boto3.client("stepfunctions").list_executions(stateMachineArn=deployed["machine"])
    assert [e["executionArn"] for e in listed["executions"]] == [execution]
    # The run's transform job and folder, as the state machine names them.
    job = f"shop-dupes-{hashlib.md5(execution.encode()).hexdigest()}-0"
    deployed["s3"].put_object(Bucket="shop-data", Key=f"scores/{job}/a.jsonl.out", Body=b"{}\n")
    code, out, err = run(capsys, "batch", "status", *args, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert [r["execution_arn"] for r in shown["runs"]] == [execution]
    current = shown["run"]
    assert current["status"] == "RUNNING" and current["transform_job"] == job
    assert current["output_folder"] == f"s3://shop-data/scores/{job}/"
    assert (current["output_files"], current["input_files"]) == (1, 3)
    assert current["attempts"] == [job[:-1] + str(n) for n in range(3)]


def test_run_waits_until_the_run_ends_and_fails_when_it_did_not_succeed(
    deployed: dict[str, Any],
) -> None:
    server = deployed["server"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferfleet.cli",
            "batch",
            "run",
            "--config",
            str(deployed["fleet"]),
            "--job",
            "dupes",
            "--poll-seconds",
            "0.2",
            "--json",
        ],
        env={**offline_aws_environment(server), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + 60
    executions: list[dict[str, Any]] = []
    while not executions and time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=deployed["machine"])["executions"]
        time.sleep(0.2)
    assert executions, "the CLI started no run"
    time.sleep(1.0)
    assert process.poll() is None  # still waiting on a running run
    sfn.stop_execution(executionArn=executions[0]["executionArn"], error="Operator")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    finished = json.loads(out)
    assert finished["status"] == "ABORTED"
    assert finished["execution_arn"] == executions[0]["executionArn"]
    assert b"Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("--job", "nope"), 2, "--job nope: not a batch job of"),
        (("--job", "dupes", "--region", "us-west-2"), 2, "batch job dupes runs in us-east-1"),
        (("--job", "dupes", "--input", "x"), 2, "--input is for --local runs"),
        ((), 2, "--job: name the batch job"),
    ],
)
def test_bad_flags_are_one_paragraph_naming_the_flag(
    deployed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    got, _out, err = run(capsys, "batch", "run", "--config", str(deployed["fleet"]), *argv,
                         "--endpoint-url", deployed["server"].url)  # fmt: skip
    assert got == code
    assert message in " ".join(err.split()) and "Traceback" not in err


def test_a_stack_without_the_jobs_output_says_to_deploy_it(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("cloudformation").delete_stack(StackName="shop-us-east-1")
    got, _out, err = run(capsys, "batch", "status", "--config", str(deployed["fleet"]),
                         "--job", "dupes", "--endpoint-url", deployed["server"].url)  # fmt: skip
    assert got == 1
    assert "does not exist in us-east-1; deploy it first" in " ".join(err.split())
