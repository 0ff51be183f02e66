"""Resizing and re-routing deployed targets: SageMaker and ECS against moto's server, the
SageMaker routing switch (UpdateEndpoint, which moto lacks) against botocore's Stubber with
the service's real request shapes. The original capacity and config always come back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto_server import MotoServer, offline_aws_environment

from inferfleet.cli.bench.scaling import EcsScaler, SageMakerScaler
from inferfleet.cli.bench.variants import SageMakerRouting
from inferfleet.cli.errors import UserError
from inferfleet.cli.main import main

INFERFLEET = str(Path(sys.executable).with_name("inferfleet"))
ENDPOINT = "llm-endpoint"
CONFIG = "llm-config-v1"
CONFIG_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{CONFIG}"
ENDPOINT_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"


def create_endpoint(instances: int = 1) -> None:
    client = boto3.client("sagemaker")
    client.create_model(
        ModelName="llm", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/llm:1"},
    )  # fmt: skip
    client.create_endpoint_config(
        EndpointConfigName=CONFIG,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "llm",
                             "InitialInstanceCount": instances, "InstanceType": "ml.m5.large",
                             "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}}],
    )  # fmt: skip
    client.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=CONFIG)


def instance_count() -> int:
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    return endpoint["ProductionVariants"][0]["CurrentInstanceCount"]


@pytest.mark.slow
def test_sagemaker_sweep_resizes_each_step_and_restores(
    moto, shared_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    create_endpoint(instances=1)
    moto.restart_recording()
    out = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exited:
        main([
            "bench", "--api", "sagemaker", "--target", ENDPOINT, "--endpoint-url", shared_server,
            "--region", "us-east-1", "--scale", "instances=2,3", "--users-per-instance", "1",
            "--duration", "0.5", "--warmup", "0", "--output-tokens", "4", "--out", str(out),
            "--max-loop-lag-ms", "1000",
        ])  # fmt: skip
    assert exited.value.code in (0, None)
    steps = json.loads((out / "results.json").read_text())["steps"]
    assert [(step["instances"], step["users"]) for step in steps] == [(2, 2), (3, 3)]
    updates = moto.recorded_targets("UpdateEndpointWeightsAndCapacities")
    assert [u["DesiredWeightsAndCapacities"] for u in updates] == [
        [{"VariantName": "AllTraffic", "DesiredInstanceCount": count}] for count in (2, 3, 1)
    ]
    assert instance_count() == 1


@pytest.mark.slow
def test_sagemaker_capacity_is_restored_on_ctrl_c(moto, shared_server: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    create_endpoint(instances=1)
    out = tmp_path / "interrupted"
    command = [
        INFERFLEET, "bench", "--api", "sagemaker", "--target", ENDPOINT, "--endpoint-url",
        shared_server, "--region", "us-east-1", "--scale", "instances=4,6",
        "--users-per-instance", "1", "--duration", "60", "--warmup", "0", "--output-tokens", "4",
        "--out", str(out),
    ]  # fmt: skip
    environment = {**offline_aws_environment(moto), "PATH": str(Path(sys.executable).parent)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        deadline = time.monotonic() + 60
        while instance_count() != 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert instance_count() == 1
    [step] = json.loads((out / "results.json").read_text())["steps"]
    assert step["instances"] == 4 and step["partial"] is True


def test_sagemaker_scaler_errors_name_the_endpoint(moto) -> None:  # type: ignore[no-untyped-def]
    scaler = SageMakerScaler("absent", region="us-east-1", timeout_s=5, stopped=lambda: False)
    with pytest.raises(UserError, match="--target: DescribeEndpoint absent failed") as caught:
        scaler.resize(2)
    assert caught.value.exit_code == 1


@pytest.fixture
def ecs_service(moto: MotoServer):  # type: ignore[no-untyped-def]
    """A cluster, a service of 3 tasks, an Auto Scaling group of 3 and a target group in moto.

    moto runs no tasks (it reports as many running as desired) and registers nothing: the
    target group holds the group's 3 instances, so 3 healthy targets is all it ever has, and
    a resize to 5 never becomes ready.
    """
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    autoscaling = boto3.client("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId=image, InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="pool", LaunchConfigurationName="lc", MinSize=3, MaxSize=3,
        DesiredCapacity=3, VPCZoneIdentifier=subnet,
    )  # fmt: skip
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName="fleet")
    ecs.register_task_definition(
        family="llm", containerDefinitions=[{"name": "llm", "image": "llm:1", "memory": 512}]
    )
    ecs.create_service(cluster="fleet", serviceName="llm", taskDefinition="llm", desiredCount=3)
    elbv2 = boto3.client("elbv2")
    target_group = elbv2.create_target_group(Name="llm", Protocol="HTTP", Port=8000, VpcId=vpc)
    arn = target_group["TargetGroups"][0]["TargetGroupArn"]
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["pool"])
    instances = [item["InstanceId"] for item in group["AutoScalingGroups"][0]["Instances"]]
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in instances])
    moto.restart_recording()
    return ecs, autoscaling, moto, arn


def group_capacity(autoscaling) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["pool"])
    first = group["AutoScalingGroups"][0]
    return first["MinSize"], first["MaxSize"], first["DesiredCapacity"]


def test_ecs_resize_sets_desired_count_and_capacity_and_restores(ecs_service) -> None:  # type: ignore[no-untyped-def]
    ecs, autoscaling, server, arn = ecs_service
    scaler = EcsScaler("fleet", "llm", asg_name="pool", target_group_arn=arn,
                       tasks_per_instance=1, region="us-east-1", timeout_s=3,
                       stopped=lambda: False, poll_s=0.05)  # fmt: skip
    scaler.resize(3)  # the original: nothing to change
    assert server.recorded_targets("UpdateService") == []
    # 5 healthy targets never appear: the wait gives up and says what did not happen.
    with pytest.raises(UserError, match="did not run 5 healthy task") as caught:
        scaler.resize(5)
    assert caught.value.exit_code == 1
    assert group_capacity(autoscaling) == (5, 5, 5)
    scaler.restore()
    service = ecs.describe_services(cluster="fleet", services=["llm"])["services"][0]
    assert service["desiredCount"] == 3
    assert group_capacity(autoscaling) == (3, 3, 3)
    assert [call["desiredCount"] for call in server.recorded_targets("UpdateService")] == [5, 3]


@pytest.mark.slow
def test_ecs_sweep_through_the_cli_restores_after_a_failed_resize(
    ecs_service, shared_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    ecs, autoscaling, _, arn = ecs_service
    out = tmp_path / "ecs"
    with pytest.raises(SystemExit) as exited:
        main([
            "bench", "--target", shared_server, "--scale", "instances=3,5",
            "--users-per-instance", "1", "--ecs-cluster", "fleet", "--ecs-service", "llm",
            "--asg-name", "pool", "--target-group-arn", arn, "--region", "us-east-1",
            "--scale-timeout", "2",
            "--duration", "0.5", "--warmup", "0", "--output-tokens", "4", "--out", str(out),
            "--max-loop-lag-ms", "1000",
        ])  # fmt: skip
    assert exited.value.code == 1
    assert "--scale: service llm did not run 5 healthy task(s)" in capsys.readouterr().err
    steps = json.loads((out / "results.json").read_text())["steps"]
    assert [step["instances"] for step in steps] == [3]
    assert (
        ecs.describe_services(cluster="fleet", services=["llm"])["services"][0]["desiredCount"] == 3
    )
    assert group_capacity(autoscaling) == (3, 3, 3)


def endpoint_reply(config_name: str, status: str = "InService") -> dict:
    return {"EndpointName": ENDPOINT, "EndpointArn": ENDPOINT_ARN,
            "EndpointConfigName": config_name, "EndpointStatus": status,
            "CreationTime": "2026-01-01T00:00:00Z",
            "LastModifiedTime": "2026-01-01T00:00:00Z"}  # fmt: skip


def test_sagemaker_routing_switch_copies_updates_and_restores() -> None:
    switch = SageMakerRouting(ENDPOINT, region="us-east-1", timeout_s=5, stopped=lambda: False,
                              poll_s=0.01)  # fmt: skip
    variants = [{"VariantName": "AllTraffic", "ModelName": "llm", "InitialInstanceCount": 2,
                 "InstanceType": "ml.g5.24xlarge",
                 "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}}]  # fmt: skip
    config = {"EndpointConfigName": CONFIG, "EndpointConfigArn": CONFIG_ARN,
              "ProductionVariants": variants, "CreationTime": "2026-01-01T00:00:00Z",
              "KmsKeyId": "alias/llm"}  # fmt: skip
    by_name = {"EndpointName": ENDPOINT}
    with Stubber(switch._client) as stub:
        stub.add_response("describe_endpoint", endpoint_reply(CONFIG), by_name)
        stub.add_response("describe_endpoint_config", config, {"EndpointConfigName": CONFIG})
        switch.apply("least_outstanding_requests")  # the endpoint's own strategy: no change
        assert switch.current == CONFIG
        copy = switch.copy_name("RANDOM")
        stub.add_response("describe_endpoint_config", config, {"EndpointConfigName": CONFIG})
        random_variants = [{**variants[0], "RoutingConfig": {"RoutingStrategy": "RANDOM"}}]
        stub.add_response(
            "create_endpoint_config", {"EndpointConfigArn": CONFIG_ARN},
            {"EndpointConfigName": copy, "ProductionVariants": random_variants,
             "KmsKeyId": "alias/llm"},
        )  # fmt: skip
        update = {"EndpointName": ENDPOINT, "EndpointConfigName": copy,
                  "RetainAllVariantProperties": True}  # fmt: skip
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": ENDPOINT_ARN},
            update,
        )
        stub.add_response("describe_endpoint", endpoint_reply(copy, "Updating"), by_name)
        stub.add_response("describe_endpoint", endpoint_reply(copy), by_name)
        switch.apply("random")
        assert switch.current == copy and len(copy) <= 63 and copy.startswith(CONFIG)
        switch.apply("random")  # already there: no call
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {**update, "EndpointConfigName": CONFIG})  # fmt: skip
        stub.add_response("describe_endpoint", endpoint_reply(CONFIG), by_name)
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": copy})
        switch.restore()
        stub.assert_no_pending_responses()
    assert switch.current == CONFIG


def test_a_failed_update_still_deletes_the_copy() -> None:
    switch = SageMakerRouting(ENDPOINT, region="us-east-1", timeout_s=5, stopped=lambda: False,
                              poll_s=0.01)  # fmt: skip
    config = {"EndpointConfigName": CONFIG, "EndpointConfigArn": CONFIG_ARN,
              "CreationTime": "2026-01-01T00:00:00Z",
              "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "llm",
                                      "InitialInstanceCount": 1,
                                      "InstanceType": "ml.g5.24xlarge"}]}  # fmt: skip
    endpoint = endpoint_reply(CONFIG)
    with Stubber(switch._client) as stub:
        stub.add_response("describe_endpoint", endpoint, {"EndpointName": ENDPOINT})
        stub.add_response("describe_endpoint_config", config, {"EndpointConfigName": CONFIG})
        stub.add_response("describe_endpoint_config", config, {"EndpointConfigName": CONFIG})
        stub.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": CONFIG_ARN},
        )
        stub.add_client_error("update_endpoint", "ResourceLimitExceeded", "instance limit")
        with pytest.raises(UserError, match=r"UpdateEndpoint to .* failed .*instance limit"):
            switch.apply("random")
        # The endpoint never left its own config: only the copy is deleted.
        copy = switch.copy_name("RANDOM")
        stub.add_response("delete_endpoint_config", {}, {"EndpointConfigName": copy})
        switch.restore()
        stub.assert_no_pending_responses()
