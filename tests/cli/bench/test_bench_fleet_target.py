"""``bench --config fleet.yaml --service NAME``: the target from the fleet plan and its stack."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from inferfleet.cli.main import main
from inferfleet.cli.sizing.prices import load_prices
from inferfleet.infra import names

FLEET = """\
name: tiny
regions: [us-east-1, us-west-2]
services:
  chat:
    kind: llm
    model: {parameters_b: 8, weights_dtype: int8, max_batch_size: 8}
    pools:
      - {instance_type: inf2.xlarge, tensor_parallel: 2, min: 2, max: 4}
      - {instance_type: trn1.2xlarge, tensor_parallel: 2, min: 1, max: 4}
  intent:
    kind: classifier
    model: {parameters_b: 0.11}
    pools:
      - {instance_type: inf2.xlarge, tensor_parallel: 1, max: 2}
"""
GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/chat/0123456789abcdef"
QUICK = ("--users", "1", "--duration", "0.5", "--warmup", "0", "--output-tokens", "4",
         "--max-loop-lag-ms", "1000")  # fmt: skip


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    return path


def deploy_outputs(stack: str, outputs: dict[str, str]) -> None:
    """A real CloudFormation stack in moto with the outputs the regional stack emits."""
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()},
            }
        ),
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(["bench", *args])
    return exited.value.code or 0, capsys.readouterr().err  # type: ignore[return-value]


def test_url_target_group_instances_and_price_come_from_the_fleet(  # type: ignore[no-untyped-def]
    moto, shared_server: str, fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url_key, group_key = names.service_outputs("chat")
    deploy_outputs("tiny-us-east-1", {url_key: shared_server, group_key: GROUP})
    out = tmp_path / "run"

    code, err = bench(
        capsys, "--config", str(fleet), "--service", "chat", *QUICK, "--out", f"{out}"
    )

    assert code == 0, err
    target = json.loads((out / "results.json").read_text())["target"]
    assert target["url"] == f"{shared_server}/v1/completions"
    assert target["fleet"] == {"config": str(fleet), "service": "chat", "region": "us-east-1"}
    # The plan's min per pool: 2 inf2.xlarge and 1 trn1.2xlarge, priced from the shipped table.
    assert target["instances"] == 3
    prices = load_prices()
    expected = (2 * prices.per_hour("inf2.xlarge") + prices.per_hour("trn1.2xlarge")) / 3
    assert target["price_per_hour"] == pytest.approx(expected, abs=1e-4)
    asked = [entry["body"] or "" for entry in moto.recorded_requests()]
    assert any("Action=DescribeStacks" in body and "tiny-us-east-1" in body for body in asked)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--service", "search"], 2, "--service search: "),
        (["--region", "eu-west-1", "--service", "chat"], 2, "--region eu-west-1: "),
        ([], 2, "--service: "),
        (["--service", "chat", "--target", "http://127.0.0.1:9"], 2, "--target: --config"),
        (["--service", "chat", "--region", "us-west-2"], 1, "stack tiny-us-west-2 does not exist"),
        (["--service", "intent"], 1, "has no output IntentEndpoint"),
    ],
)
def test_bad_fleet_targets_say_what_to_fix(  # type: ignore[no-untyped-def]
    moto,
    fleet: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    url_key, group_key = names.service_outputs("chat")
    deploy_outputs("tiny-us-east-1", {url_key: "http://127.0.0.1:9", group_key: GROUP})
    out = tmp_path / "run"

    exit_code, err = bench(capsys, "--config", str(fleet), *args, *QUICK, "--out", str(out))

    assert exit_code == code, err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_service_without_config_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = bench(capsys, "--service", "chat", *QUICK)
    assert code == 2 and "--service: names a service of a fleet file; add --config" in err


def test_a_grpc_service_is_benched_over_grpc(  # type: ignore[no-untyped-def]
    moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/ab-1"
    path = tmp_path / "fleet.yaml"
    path.write_text(
        FLEET.replace("regions: [us-east-1, us-west-2]",
                      f"regions: [{{name: us-east-1, certificate_arn: '{certificate}'}}]")
        .replace("    kind: llm\n", "    kind: llm\n    protocol: grpc\n")
    )  # fmt: skip
    url_key, group_key = names.service_outputs("chat")
    deploy_outputs("tiny-us-east-1", {url_key: "http://127.0.0.1:9", group_key: GROUP})

    code, err = bench(capsys, "--config", str(path), "--service", "chat", *QUICK,
                      "--out", str(tmp_path / "run"))  # fmt: skip

    # No --api: the service's protocol picks triton-grpc, which asks the target over gRPC.
    assert code == 1
    assert "cannot read the model repository of 127.0.0.1:9 over gRPC" in err


def test_scale_resizes_the_one_pool_named_in_the_stack(moto, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    from inferfleet.cli.bench.fleet_target import resolve_fleet_target

    url_key, group_key = names.service_outputs("intent")
    ecs_key, asg_key = names.pool_outputs("intent", "inf2.xlarge")
    deploy_outputs(
        "tiny-us-east-1",
        {
            url_key: "http://127.0.0.1:9", group_key: GROUP, names.CLUSTER_NAME: "tiny-cluster",
            ecs_key: "tiny-intent-inf2", asg_key: "tiny-intent-asg",
        },
    )  # fmt: skip

    given = {"config": fleet, "service": "intent", "scale": "instances=1,2"}
    resolved = resolve_fleet_target(given)

    assert (resolved["ecs_cluster"], resolved["ecs_service"], resolved["asg_name"]) == (
        "tiny-cluster", "tiny-intent-inf2", "tiny-intent-asg",
    )  # fmt: skip
    assert resolved["api"] == "classify" and resolved["scale"] == "instances=1,2"


def test_scale_of_a_service_of_several_pools_asks_which(moto, fleet: Path) -> None:  # type: ignore[no-untyped-def]
    from inferfleet.cli.bench.fleet_target import resolve_fleet_target
    from inferfleet.cli.errors import UserError

    url_key, group_key = names.service_outputs("chat")
    deploy_outputs("tiny-us-east-1", {url_key: "http://127.0.0.1:9", group_key: GROUP})

    with pytest.raises(UserError, match=r"--scale: chat runs 2 pools in us-east-1 \(inf2"):
        resolve_fleet_target({"config": fleet, "service": "chat", "scale": "instances=1,2"})
