"""The wait and smoke steps of a rollout against moto (as if it were AWS) and a real
readiness server: a region that serves passes, one that does not settle stops there."""

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import aws_client, readiness_server
from fleet_documents import new_vpc_region, write_fleet
from moto_server import MotoServer

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.cdk_cli import CdkCli
from inferfleet.cli.deploy.events import EventStream, JsonLinesSink, StepFailed
from inferfleet.cli.deploy.rollout import Rollout, RolloutOptions
from inferfleet.infra import names
from inferfleet.infra.plan import load_fleet_plan

REGION = "us-east-1"
FAST = RolloutOptions(wait_timeout_s=10, poll_s=0.2)


@pytest.fixture(scope="module")
def target_group(moto_module: MotoServer) -> str:
    vpc = aws_client(moto_module, "ec2", REGION).create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]
    elbv2 = aws_client(moto_module, "elbv2", REGION)
    arn = elbv2.create_target_group(
        Name="verify", Protocol="HTTP", Port=8000, VpcId=vpc["VpcId"], TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.7.0.9"}])
    return arn


def _cluster(server: MotoServer, name: str, desired: int) -> str:
    ecs = aws_client(server, "ecs", REGION)
    ecs.create_cluster(clusterName=name)
    ecs.register_task_definition(
        family="model", containerDefinitions=[{"name": "model", "image": "x", "memory": 512}]
    )
    ecs.create_service(
        cluster=name, serviceName="chat", taskDefinition="model", desiredCount=desired
    )
    return name


@pytest.fixture
def rollout(offline_aws: MotoServer, tmp_path: Path) -> Iterator[tuple[Rollout, io.StringIO]]:
    # No --endpoint-url: the engine treats moto (reached through AWS_ENDPOINT_URL) as AWS.
    config = write_fleet(tmp_path / "fleet.yaml", "verify", [new_vpc_region(REGION)])
    out = io.StringIO()
    engine = Rollout(
        load_fleet_plan(config),
        config=config,
        aws=AwsAccess(),
        cdk=CdkCli.locate(Path(__file__).parent),
        workdir=tmp_path / "work",
        events=EventStream([JsonLinesSink(out)]),
    )
    yield engine, out


def test_a_serving_region_passes_the_wait_and_the_smoke_request(
    rollout: tuple[Rollout, io.StringIO], offline_aws: MotoServer, target_group: str
):
    engine, out = rollout
    with readiness_server() as endpoint:
        outputs = {
            names.CLUSTER_NAME: _cluster(offline_aws, "serving", desired=0),
            "ChatTargetGroupArn": target_group,
            "ChatEndpoint": endpoint,
        }
        engine.verify(REGION, outputs, FAST)

    wait, smoke = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (wait["phase"], wait["status"]) == ("wait", "succeeded")
    assert [s["name"] for s in wait["detail"]["services"]] == ["chat"]
    assert wait["detail"]["targets"][0]["states"] == {"healthy": 1}
    assert (smoke["phase"], smoke["status"]) == ("smoke", "succeeded")
    request = smoke["detail"]["requests"]["chat"]
    assert request["url"] == f"{endpoint}/v2/health/ready"
    assert request["status"] == 200


def test_a_region_whose_services_do_not_settle_stops_at_the_wait(
    rollout: tuple[Rollout, io.StringIO], offline_aws: MotoServer, target_group: str
):
    engine, out = rollout
    outputs = {
        names.CLUSTER_NAME: _cluster(offline_aws, "starving", desired=1),
        "ChatTargetGroupArn": target_group,
        "ChatEndpoint": "http://127.0.0.1:9",
    }

    with pytest.raises(StepFailed, match="chat runs 0 of 1 tasks"):
        engine.verify(REGION, outputs, RolloutOptions(wait_timeout_s=1, poll_s=0.2))

    (wait,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (wait["phase"], wait["status"], wait["region"]) == ("wait", "failed", REGION)
