"""The global stack's inputs and status, read from CloudFormation (moto's server)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto_server import MotoServer, moto, moto_server  # noqa: F401

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.events import StepFailed
from inferfleet.cli.deploy.rollout import global_parameter_values
from inferfleet.cli.deploy.status import global_status
from inferfleet.infra import names
from inferfleet.infra.plan import load_fleet_plan

EXAMPLE = Path(__file__).resolve().parents[3] / "fleet.yaml"


def create_stack(region: str, name: str, outputs: dict[str, str]) -> None:
    """A stack that has just these outputs (one placeholder resource)."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=region).create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


def test_parameters_come_from_each_regions_outputs_and_a_missing_region_is_named(
    moto: MotoServer,  # noqa: F811
) -> None:
    plan = load_fleet_plan(EXAMPLE)
    glob = plan.global_plan
    aws = AwsAccess(endpoint_url=moto.url)
    # every region but the last deployed: the global stack cannot take its outputs yet
    *deployed, missing = plan.regions
    for region in deployed:
        create_stack(
            region.region,
            region.stack_name,
            {key: f"{region.region}:{key}" for key in region.outputs},
        )
    with pytest.raises(StepFailed, match=f"points at {missing.stack_name}, which is not deployed"):
        global_parameter_values(aws, glob)
    # a stack from another fleet file: the output it lacks is named
    outputs = {key: f"{missing.region}:{key}" for key in missing.outputs}
    del outputs[names.VPC_ID]
    create_stack(missing.region, missing.stack_name, outputs)
    with pytest.raises(StepFailed, match=f"{missing.stack_name} has no output {names.VPC_ID}"):
        global_parameter_values(aws, glob)
    boto3.client("cloudformation", region_name=missing.region).delete_stack(
        StackName=missing.stack_name
    )
    create_stack(
        missing.region,
        missing.stack_name,
        {key: f"{missing.region}:{key}" for key in missing.outputs},
    )
    values = global_parameter_values(aws, glob)
    assert set(values) == {p.name for p in glob.parameters}
    for parameter in glob.parameters:
        assert values[parameter.name] == f"{parameter.region}:{parameter.output}"


def test_status_shows_the_global_stack_and_each_services_name(
    moto: MotoServer,  # noqa: F811
) -> None:
    plan = load_fleet_plan(EXAMPLE)
    glob = plan.global_plan
    aws = AwsAccess(endpoint_url=moto.url)
    assert global_status(aws, plan).stack_status == "NOT_DEPLOYED"
    create_stack(
        glob.region,
        glob.stack_name,
        {
            names.GLOBAL_HOSTED_ZONE_ID: "Z0123456789",
            **{
                names.traffic_record_output(s.name): f"{s.label}.shopping.internal."
                for s in glob.props.services
            },
        },
    )
    status = global_status(aws, plan)
    assert (status.region, status.stack, status.stack_status) == (
        "us-east-1",
        "shopping-assistant-global",
        "CREATE_COMPLETE",
    )
    assert {name: s.endpoint for name, s in status.services.items()} == {
        "assistant": "assistant.shopping.internal.",
        "intent": "query-intent.shopping.internal.",
    }
