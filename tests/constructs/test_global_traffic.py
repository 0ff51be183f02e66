"""Template assertions for the GlobalTraffic construct, its controller asset and cdk-nag."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, CfnParameter, Environment, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from inferfleet.constructs.global_traffic import METRIC_NAMESPACE, GlobalTraffic
from inferfleet.constructs.props.global_traffic import (
    GlobalTrafficProps,
    TrafficEndpoint,
    TrafficService,
)
from inferfleet.constructs.props.problems import PropsError
from inferfleet.constructs.traffic_controller.weights import WeightPolicy
from inferfleet.infra.feature_flags import cdk_feature_flags

pytestmark = pytest.mark.slow

HOME = Environment(account="123456789012", region="us-east-1")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
VPCS = tuple((f"vpc-0{index}234567890abcdef", region) for index, region in enumerate(REGIONS))


def endpoint(stack: Stack, service: str, region: str) -> TrafficEndpoint:
    """What the regional stack's outputs give, as deploy-time parameters of the global stack."""
    dns = CfnParameter(stack, f"{service}{region.replace('-', '')}Dns")
    return TrafficEndpoint(
        region=region,
        load_balancer_arn=f"arn:aws:elasticloadbalancing:{region}:123456789012:loadbalancer/"
        f"app/shop-{service}/0123456789abcdef",
        load_balancer_full_name=f"app/shop-{service}/0123456789abcdef",
        target_group_full_name=f"targetgroup/shop-{service}/fedcba9876543210",
        dns_name=dns.value_as_string,
        canonical_hosted_zone_id="Z35SXDOTRQ7X7K",
        auto_scaling_group_names=(f"shop-{service}-inf2-{region}",),
        health_alarm_name=f"shop-{region}-{service}-unhealthy",
    )


def props_for(stack: Stack, **changes: Any) -> GlobalTrafficProps:
    services = tuple(
        TrafficService(
            name=name,
            endpoints=tuple(endpoint(stack, name, region) for region in REGIONS),
            policy=WeightPolicy(objective_s=objective),
        )
        for name, objective in (("assistant", 1.0), ("intent", 0.01))
    )
    fields: dict[str, Any] = {
        "fleet": "shopping-assistant",
        "services": services,
        "zone_name": "shopping.internal",
        "private_zone_vpcs": VPCS,
    }
    return GlobalTrafficProps(**{**fields, **changes})


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(context=cdk_feature_flags(), outdir=str(outdir))
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    stack = Stack(app, "Global", env=HOME)
    traffic = GlobalTraffic(stack, "Traffic", props=props_for(stack))
    s3.Bucket(Stack(app, "Control", env=HOME), "Bare")  # nag must report this one
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    template = json.loads((outdir / "Global.template.json").read_text())
    return {
        "template": Template.from_json(template),
        "json": template,
        "stack": stack,
        "traffic": traffic,
        "outdir": outdir,
        "report": json.loads((outdir / "validation-report.json").read_text()),
    }


def resources(synthesized: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synthesized["json"]["Resources"].values() if r["Type"] == kind]


def test_the_private_zone_is_associated_with_every_regions_vpc(synthesized) -> None:
    (zone,) = resources(synthesized, "AWS::Route53::HostedZone")
    assert zone["Name"] == "shopping.internal"
    assert zone["VPCs"] == [{"VPCId": vpc, "VPCRegion": region} for vpc, region in VPCS]


def test_each_service_and_region_gets_a_weighted_alias_with_an_alarm_health_check(
    synthesized,
) -> None:
    records = resources(synthesized, "AWS::Route53::RecordSet")
    assert len(records) == 6
    assistant = [r for r in records if r["Name"] == "assistant.shopping.internal."]
    assert sorted((r["SetIdentifier"], r["Weight"]) for r in assistant) == [
        ("eu-west-1", 34),
        ("us-east-1", 33),
        ("us-west-2", 33),
    ]
    for record in records:
        assert record["Type"] == "A"
        assert record["AliasTarget"]["EvaluateTargetHealth"] is True
        assert record["AliasTarget"]["DNSName"]["Ref"].endswith("Dns")
        assert set(record["HealthCheckId"]) == {"Ref"}  # the check's id
    checks = resources(synthesized, "AWS::Route53::HealthCheck")
    assert len(checks) == 6
    identifiers = sorted(
        (
            c["HealthCheckConfig"]["AlarmIdentifier"]["Region"],
            c["HealthCheckConfig"]["AlarmIdentifier"]["Name"],
        )
        for c in checks
    )
    assert ("us-west-2", "shop-us-west-2-assistant-unhealthy") in identifiers
    for check in checks:
        config = check["HealthCheckConfig"]
        assert config["Type"] == "CLOUDWATCH_METRIC"
        assert config["InsufficientDataHealthStatus"] == "LastKnownStatus"


def test_the_controller_runs_alone_every_period_with_the_config_it_reads(synthesized) -> None:
    template = synthesized["template"]
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "traffic_controller.handler.handler",
            "ReservedConcurrentExecutions": 1,
            "Runtime": "python3.13",
        },
    )
    template.has_resource_properties(
        "AWS::Events::Rule",
        {"ScheduleExpression": "rate(1 minute)", "State": "ENABLED"},
    )
    (function,) = [
        f
        for f in resources(synthesized, "AWS::Lambda::Function")
        if "traffic_controller" in f["Handler"]
    ]
    settings = json.loads(function["Environment"]["Variables"]["INFERFLEET_TRAFFIC_CONFIG"])
    assert settings["service_parameters"] == [
        "/inferfleet/shopping-assistant/traffic/services/assistant",
        "/inferfleet/shopping-assistant/traffic/services/intent",
    ]
    assert settings["period_s"] == 60 and settings["mode"] == "route53"
    documents = {
        p["Name"]: json.dumps(p["Value"])
        for p in resources(synthesized, "AWS::SSM::Parameter")
        if "/services/" in p["Name"]
    }
    intent = documents["/inferfleet/shopping-assistant/traffic/services/intent"]
    # The zone id is joined in by CloudFormation; the regional names are literal here.
    for literal in (
        "intent.shopping.internal.",
        "app/shop-intent/0123456789abcdef",
        "shop-intent-inf2-eu-west-1",
        '\\"objective_s\\":0.01',
    ):
        assert literal in intent, literal
    assert "Fn::GetAtt" in intent or "Ref" in intent


def test_the_controller_may_touch_only_its_zone_parameters_and_metric_namespace(
    synthesized,
) -> None:
    statements = [
        statement
        for policy in resources(synthesized, "AWS::IAM::Policy")
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    by_action: dict[str, list[str]] = {}
    for statement in statements:
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            by_action.setdefault(action, []).append(json.dumps(statement))
    (route53,) = by_action["route53:ChangeResourceRecordSets"]
    assert "hostedzone/" in route53
    (put,) = by_action["cloudwatch:PutMetricData"]
    assert json.loads(put)["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}
    }
    (written,) = by_action["ssm:PutParameter"]
    assert "traffic/state" in written and "overrides" not in written
    read = " ".join(by_action["ssm:GetParameter"])
    for name in ("overrides", "state", "services/assistant", "services/intent"):
        assert f"parameter/inferfleet/shopping-assistant/traffic/{name}" in read
    assert not any(action.startswith("globalaccelerator:") for action in by_action)


def test_alarms_say_when_the_fleet_lacks_capacity_and_when_the_controller_fails(
    synthesized,
) -> None:
    alarms = resources(synthesized, "AWS::CloudWatch::Alarm")
    capacity = [a for a in alarms if a.get("MetricName") == "FleetCapacityUtilization"]
    assert sorted(
        d["Value"] for a in capacity for d in a["Dimensions"] if d["Name"] == "Service"
    ) == [
        "assistant",
        "intent",
    ]
    for alarm in capacity:
        assert (alarm["Threshold"], alarm["EvaluationPeriods"]) == (1, 3)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert any(a.get("MetricName") == "Errors" for a in alarms)
    parameters = resources(synthesized, "AWS::SSM::Parameter")
    assert {p["Name"] for p in parameters} == {
        "/inferfleet/shopping-assistant/traffic/overrides",
        "/inferfleet/shopping-assistant/traffic/state",
        "/inferfleet/shopping-assistant/traffic/services/assistant",
        "/inferfleet/shopping-assistant/traffic/services/intent",
    }


def test_the_lambda_asset_is_the_controller_package_and_imports_as_lambda_does(
    synthesized,
) -> None:
    assets = [
        path
        for path in synthesized["outdir"].glob("asset.*")
        if (path / "traffic_controller" / "handler.py").exists()
    ]
    assert len(assets) == 1
    files = sorted(p.relative_to(assets[0]).as_posix() for p in assets[0].rglob("*") if p.is_file())
    assert files and all(
        name.startswith("traffic_controller/") and name.endswith(".py") for name in files
    )
    subprocess.run(
        [sys.executable, "-c", "import traffic_controller.handler"],
        cwd=assets[0],
        check=True,
        env={"PATH": "", "AWS_REGION": "us-east-1"},
    )


def test_cdk_nag_finds_no_unacknowledged_errors_and_cfn_lint_is_clean(synthesized) -> None:
    erring = {
        construct.get("constructPath", "")
        for plugin in synthesized["report"]["pluginReports"]
        for violation in plugin.get("violations", [])
        if violation.get("severity", "error") == "error"
        for construct in violation["violatingConstructs"]
    }
    assert {path.split("/")[0] for path in erring} == {"Control"}
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(
        Path(synthesized["outdir"]) / "Global.template.json",
        config=ManualArgs(ignore_checks=["W3005"], regions=[HOME.region]),
    )
    assert [(match.rule.id, match.message) for match in matches] == []


def test_global_accelerator_mode_builds_endpoint_groups_and_may_set_only_their_dials() -> None:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "GlobalAccelerated", env=HOME)
    GlobalTraffic(
        stack, "Traffic", props=props_for(stack, mode="global_accelerator", private_zone_vpcs=())
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::GlobalAccelerator::Accelerator", 1)
    template.resource_count_is("AWS::GlobalAccelerator::Listener", 2)
    template.resource_count_is("AWS::GlobalAccelerator::EndpointGroup", 6)
    template.resource_count_is("AWS::Route53::RecordSet", 0)
    template.has_resource_properties(
        "AWS::GlobalAccelerator::EndpointGroup",
        {
            "EndpointGroupRegion": "us-west-2",
            "TrafficDialPercentage": 100,
            "EndpointConfigurations": [
                {"EndpointId": Match.string_like_regexp("loadbalancer/app/shop-assistant")}
                | {"Weight": 128, "ClientIPPreservationEnabled": True}
            ],
        },
    )
    text = json.dumps(template.to_json())
    assert "globalaccelerator:UpdateEndpointGroup" in text
    assert "route53:ChangeResourceRecordSets" not in text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"step": 5},
            r"services\[0\].policy.step: a full shift away from a region takes 1260 s "
            r"\(19 periods of 60 s \+ 60 s propagation \+ TTL\), over 900 s; raise step \(now 5\)",
        ),
        ({"period_s": 90}, "period_s: 90 s: use whole minutes"),
        ({"mode": "global_accelerator"}, "mode: Global Accelerator reaches internet-facing ALBs"),
        ({"zone_name": "Not A Zone"}, "zone_name: 'Not A Zone' is not a DNS name"),
        ({"floor": 50}, r"services\[0\].policy.floor: must be 0..20"),
    ],
)
def test_bad_props_fail_at_construction_naming_the_path_field_and_fix(
    changes: dict[str, Any], message: str
) -> None:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Bad", env=HOME)
    props = props_for(stack)
    policy_changes = {k: v for k, v in changes.items() if k in ("step", "floor")}
    if policy_changes:
        first = props.services[0]
        props = replace(
            props,
            services=(
                replace(first, policy=replace(first.policy, **policy_changes)),
                *props.services[1:],
            ),
        )
    other = {k: v for k, v in changes.items() if k not in policy_changes}
    with pytest.raises(PropsError, match=f"Bad/Traffic: .*{message}"):
        GlobalTraffic(stack, "Traffic", props=replace(props, **other))


def test_a_wildcard_an_app_adds_to_the_controller_role_is_reported(tmp_path: Path) -> None:
    """In a plain App(): the acknowledgements cover the controller's own statements only."""
    from aws_cdk import aws_iam as iam

    app = App(outdir=str(tmp_path))
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    stack = Stack(app, "Global", env=HOME)
    traffic = GlobalTraffic(stack, "Traffic", props=props_for(stack))
    role = traffic.controller.role  # type: ignore[union-attr]
    role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    errors = {
        (construct["constructPath"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        if violation.get("severity", "error") == "error"
        for construct in violation["violatingConstructs"]
    }
    assert errors == {
        (f"{role.node.path}/DefaultPolicy/Resource", "AwsSolutions-IAM5[Resource::*]")
    }
