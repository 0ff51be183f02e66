"""ECS and ALB waits against moto: what settles passes, what does not times out and says why."""

import pytest
from deploy_support import aws_client
from moto_server import MotoServer

from inferfleet.cli.deploy.events import StepFailed
from inferfleet.cli.deploy.waiters import Deadline, wait_services_stable, wait_targets_healthy

REGION = "us-east-1"


@pytest.fixture(scope="module")
def cluster(moto_module: MotoServer) -> str:
    ecs = aws_client(moto_module, "ecs", REGION)
    ecs.create_cluster(clusterName="waits")
    ecs.register_task_definition(
        family="model", containerDefinitions=[{"name": "model", "image": "x", "memory": 512}]
    )
    return "waits"


@pytest.fixture(scope="module")
def target_group(moto_module: MotoServer) -> str:
    ec2 = aws_client(moto_module, "ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    elbv2 = aws_client(moto_module, "elbv2", REGION)
    return elbv2.create_target_group(
        Name="waits", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]


def test_a_service_at_its_desired_count_is_stable(moto_module: MotoServer, cluster: str):
    ecs = aws_client(moto_module, "ecs", REGION)
    ecs.create_service(cluster=cluster, serviceName="idle", taskDefinition="model", desiredCount=0)

    counts = wait_services_stable(ecs, cluster, Deadline(5), delay_s=0.2)

    assert [(c.name, c.desired, c.running) for c in counts] == [("idle", 0, 0)]


def test_a_service_without_running_tasks_times_out_with_its_counts(
    moto_module: MotoServer, cluster: str
):
    ecs = aws_client(moto_module, "ecs", REGION)
    ecs.create_service(cluster=cluster, serviceName="busy", taskDefinition="model", desiredCount=2)

    with pytest.raises(StepFailed) as failure:
        wait_services_stable(ecs, cluster, Deadline(1), delay_s=0.2)

    message = str(failure.value)
    assert message.startswith("ECS services not stable within 1 s: busy runs 0 of 2 tasks")
    assert "--wait-timeout" in message


def test_an_empty_cluster_is_a_failure(moto_module: MotoServer):
    ecs = aws_client(moto_module, "ecs", REGION)
    ecs.create_cluster(clusterName="empty")
    with pytest.raises(StepFailed, match="cluster empty has no ECS services"):
        wait_services_stable(ecs, "empty", Deadline(1), delay_s=0.2)


def test_a_target_group_without_targets_times_out(moto_module: MotoServer, target_group: str):
    elbv2 = aws_client(moto_module, "elbv2", REGION)
    with pytest.raises(StepFailed, match="not healthy within 1 s: no targets"):
        wait_targets_healthy(elbv2, [target_group], Deadline(1), delay_s=0.2)


def test_healthy_targets_pass(moto_module: MotoServer, target_group: str):
    elbv2 = aws_client(moto_module, "elbv2", REGION)
    elbv2.register_targets(TargetGroupArn=target_group, Targets=[{"Id": "10.9.0.7"}])

    health = wait_targets_healthy(elbv2, [target_group], Deadline(5), delay_s=0.2)

    assert [(h.target_group_arn, h.healthy) for h in health] == [(target_group, 1)]
