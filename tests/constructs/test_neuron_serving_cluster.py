"""The serving cluster's shared plumbing: the alarm topic's key and what may use it."""

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk.assertions import Template

from inferfleet.constructs.neuron_serving_cluster import NeuronServingCluster
from inferfleet.infra.feature_flags import cdk_feature_flags

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def key_statements() -> list[dict]:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Cluster", env=Environment(account=ACCOUNT, region="us-east-1"))
    NeuronServingCluster(stack, "Serving")
    [key] = Template.from_stack(stack).find_resources("AWS::KMS::Key").values()
    return key["Properties"]["KeyPolicy"]["Statement"]


def test_cloudwatch_uses_the_alarm_key_only_for_alarms_of_this_account(key_statements):
    [statement] = [
        s for s in key_statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:*"},
    }


def test_auto_scaling_notifications_can_encrypt_to_the_alarm_topic(key_statements):
    [statement] = [
        s
        for s in key_statements
        if "aws:PrincipalArn" in s.get("Condition", {}).get("ArnEquals", {})
    ]
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert statement["Condition"] == {
        "StringEquals": {"kms:CallerAccount": ACCOUNT},
        "ArnEquals": {
            "aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/"
            "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
        },
    }
