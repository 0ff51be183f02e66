"""The Neuron capacity pool's launch template: what a model container can reach on the host."""

import json

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from inferfleet.constructs.neuron_capacity_pool import NeuronCapacityPool, NeuronCapacityPoolProps
from inferfleet.infra.feature_flags import cdk_feature_flags


@pytest.fixture(scope="module")
def pool_template() -> dict:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Pool", env=Environment(region="us-east-1"))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    NeuronCapacityPool(
        stack,
        "Inf2",
        props=NeuronCapacityPoolProps(instance_type="inf2.xlarge", max_capacity=2),
        cluster=cluster,
        notification_topic=sns.Topic(stack, "Topic"),
    )
    return Template.from_stack(stack).to_json()


def launch_template_data(template: dict) -> dict:
    [resource] = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::LaunchTemplate"
    ]
    return resource["Properties"]["LaunchTemplateData"]


def test_tasks_cannot_reach_the_instance_metadata_service(pool_template):
    data = launch_template_data(pool_template)
    metadata = data["MetadataOptions"]
    assert metadata["HttpTokens"] == "required"
    # Hop limit 1: the agent on the host network reaches IMDS, a container behind a bridge
    # does not; ECS_AWSVPC_BLOCK_IMDS cuts awsvpc tasks off it.
    assert metadata["HttpPutResponseHopLimit"] == 1
    user_data = json.dumps(data["UserData"])
    assert "echo ECS_AWSVPC_BLOCK_IMDS=true >> /etc/ecs/ecs.config" in user_data
    assert "ECS_CLUSTER=" in user_data
