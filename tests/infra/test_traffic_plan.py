"""The fleet file's traffic section: its global plan, what validate refuses (with lines), the
deploy order, and the global stack's template built from the plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferfleet.constructs.props.global_traffic import deploy_time_parameter
from inferfleet.infra import names
from inferfleet.infra.plan import build_plan, load_fleet_plan
from inferfleet.infra.spec import FleetSpec, FleetSpecError

REPO_ROOT = Path(__file__).resolve().parents[2]
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


def example() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "fleet.yaml").read_text())


def problems_in(tmp_path: Path, document: dict[str, Any]) -> tuple[str, str]:
    """The validate message for ``document``, and the file's text to find lines in."""
    path = tmp_path / "fleet.yaml"
    text = yaml.safe_dump(document, sort_keys=False)
    path.write_text(text)
    (tmp_path / "cdk.context.json").write_text((REPO_ROOT / "cdk.context.json").read_text())
    with pytest.raises(FleetSpecError) as raised:
        load_fleet_plan(path)
    return str(raised.value), text


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_example_plans_a_global_stack_after_the_regions_it_points_at():
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    glob = plan.global_plan
    assert glob is not None
    assert plan.deploy_order == (
        *(names.regional_stack_name(plan.name, r) for r in REGIONS),
        names.global_stack_name(plan.name),
    )
    assert glob.region == "us-east-1" and glob.account == "123456789012"
    props = glob.props
    assert [s.label for s in props.services] == ["assistant", "query-intent"]
    # internal load balancers: a new private zone with every region's VPC
    assert props.hosted_zone_id is None
    assert [region for _, region in props.private_zone_vpcs] == list(REGIONS)
    # defaults come from the props; the objective from each service's latency alarm
    assert (props.mode, props.period_s, props.record_ttl_s) == ("route53", 60, 60)
    assistant, intent = props.services
    assert assistant.policy.objective_s == 1.0 and intent.policy.objective_s == 0.01
    assert assistant.policy.requests_per_target_per_minute == 120
    assert props.worst_case_shift_s(assistant) == 5 * 60 + 60 + 60
    assert not props.problems()


def test_every_parameter_is_an_output_its_regional_stack_has():
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    glob = plan.global_plan
    by_stack = {region.stack_name: region for region in plan.regions}
    for parameter in glob.parameters:
        region = by_stack[parameter.stack]
        assert region.region == parameter.region
        assert parameter.output in region.outputs
    # every marker in the props is one of the parameters, and every parameter is used
    used = set()
    for service in glob.props.services:
        for endpoint in service.endpoints:
            values = [
                endpoint.load_balancer_full_name,
                endpoint.target_group_full_name,
                endpoint.dns_name,
                endpoint.canonical_hosted_zone_id,
                *endpoint.auto_scaling_group_names,
            ]
            used |= {deploy_time_parameter(v) for v in values}
            # route53 mode reads no ALB ARN; the health alarm is named, not passed
            assert endpoint.load_balancer_arn == ""
            assert endpoint.health_alarm_name == names.region_health_alarm_name(
                plan.name, endpoint.region, service.name
            )
    used |= {deploy_time_parameter(vpc) for vpc, _ in glob.props.private_zone_vpcs}
    assert used == {p.name for p in glob.parameters}
    # the assistant runs trn1 only in the US: one Auto Scaling group output fewer in Europe
    assistant = glob.props.services[0]
    assert [len(e.auto_scaling_group_names) for e in assistant.endpoints] == [2, 2, 1]
    # the regional plans name the alarms the health checks follow
    service = plan.region("us-west-2").service("assistant")
    assert service.props.health_alarm_name == assistant.endpoints[1].health_alarm_name
    values = glob.parameter_values(
        {s: {o: f"{s}/{o}" for o in by_stack[s].outputs} for s in by_stack}
    )
    assert (
        values[glob.parameters[0].name] == f"{glob.parameters[0].stack}/{glob.parameters[0].output}"
    )


def test_a_fleet_without_traffic_has_no_global_stack_nor_traffic_outputs():
    document = example()
    del document["traffic"]
    plan = build_plan(FleetSpec.model_validate(document), config_dir=REPO_ROOT)
    assert plan.global_plan is None and plan.deploy_order == plan.stacks
    assert len(plan.deploy_order) == 3
    region = plan.region("us-east-1")
    assert not region.behind_traffic and names.VPC_ID not in region.outputs
    assert all(s.props.health_alarm_name is None for s in region.services)


def test_a_slow_full_shift_names_the_knob_and_the_line(tmp_path):
    document = example()
    document["traffic"]["step"] = 5  # 19 periods of 60 s + 60 + 60 s = 1260 s
    message, text = problems_in(tmp_path, document)
    assert f"fleet.yaml:{line_of(text, 'step: 5')}: traffic.step:" in message
    assert "takes 1260 s" in message and "over 900 s" in message
    assert "raise step (now 5), or lower period_s or record_ttl_s" in message


@pytest.mark.parametrize(
    ("change", "field", "needle", "says"),
    [
        (
            {"services": {"chat": {}}},
            "traffic.services.chat",
            "chat:",
            "'chat' is not a service of this fleet; use one of assistant, intent",
        ),
        (
            {"mode": "global_accelerator"},
            "traffic.mode",
            "mode: global_accelerator",
            "global_accelerator reaches internet-facing load balancers only",
        ),
        ({"record_ttl_s": 5000}, "traffic.record_ttl_s", "record_ttl_s", "5000"),
        ({"period_s": 90}, "traffic.period_s", "period_s", "use whole minutes from 60 to 900"),
        ({"home_region": "ap-south-1"}, "traffic.home_region", "home_region", "not a region"),
        ({"floor": 50}, "traffic.floor", "floor", "must be 0..20"),
    ],
)
def test_bad_traffic_sections_are_refused_at_validate_with_their_line(
    tmp_path, change, field, needle, says
):
    document = example()
    document["traffic"].update(change)
    message, text = problems_in(tmp_path, document)
    assert f"fleet.yaml:{line_of(text, needle)}: {field}: " in message
    assert says in message


def test_a_record_that_is_no_dns_label_is_refused_under_its_service(tmp_path):
    document = example()
    document["traffic"]["services"]["intent"] = {"record": "Query_Intent"}
    message, text = problems_in(tmp_path, document)
    assert (
        f"fleet.yaml:{line_of(text, 'record: Query_Intent')}: traffic.services.intent.record:"
        in message
    )


def test_an_existing_zone_by_id_gets_no_vpcs_and_refuses_private(tmp_path):
    document = example()
    document["traffic"]["zone"] = {"name": "shop.example.com", "id": "Z0123456789ABCDEFGHIJ"}
    plan = build_plan(FleetSpec.model_validate(document), config_dir=REPO_ROOT)
    props = plan.global_plan.props
    assert props.hosted_zone_id == "Z0123456789ABCDEFGHIJ" and props.private_zone_vpcs == ()
    assert names.VPC_ID not in {p.output for p in plan.global_plan.parameters}
    document["traffic"]["zone"]["private"] = True
    message, _ = problems_in(tmp_path, document)
    assert "traffic.zone.private: applies to a new zone" in message


def test_global_accelerator_for_internet_facing_load_balancers_reads_their_arns():
    document = example()
    document["network"] = {"internet_facing": True, "allow_plaintext_internet": True}
    document["traffic"]["mode"] = "global_accelerator"
    plan = build_plan(FleetSpec.model_validate(document), config_dir=REPO_ROOT)
    props = plan.global_plan.props
    assert props.private_zone_vpcs == ()
    endpoint = props.services[0].endpoints[0]
    assert deploy_time_parameter(endpoint.load_balancer_arn) is not None
    assert endpoint.dns_name == "" and endpoint.canonical_hosted_zone_id == ""
    with pytest.raises(FleetSpecError) as raised:
        build_plan(FleetSpec.model_validate(document), config_dir=REPO_ROOT, emulator=True)
    [problem] = raised.value.problems
    assert (
        problem.path == ("traffic", "mode") and "moto has no Global Accelerator" in problem.message
    )


def test_emulator_mode_leaves_out_the_controller_and_says_so():
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml", emulator=True)
    assert plan.global_plan.props.controller is False
    assert any("traffic controller" in item for item in plan.global_plan.left_out)
    # the records and their parameters stay
    assert (
        plan.global_plan.parameters
        == load_fleet_plan(REPO_ROOT / "fleet.yaml").global_plan.parameters
    )


# --- the global stack's template, from the plan ----------------------------------------------


@pytest.fixture(scope="module")
def global_template(tmp_path_factory) -> dict[str, Any]:
    from aws_cdk import App

    from inferfleet.infra.feature_flags import cdk_feature_flags
    from inferfleet.infra.global_stack import GlobalStack

    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    outdir = tmp_path_factory.mktemp("global")
    app = App(context=cdk_feature_flags(), outdir=str(outdir), analytics_reporting=False)
    GlobalStack(app, plan.global_plan)
    app.synth()
    template = json.loads((outdir / f"{plan.global_plan.stack_name}.template.json").read_text())
    return {"plan": plan, "template": template}


def _of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


@pytest.mark.slow
def test_the_global_stack_takes_the_plans_parameters_and_weights_each_service_and_region(
    global_template,
):
    plan, template = global_template["plan"], global_template["template"]
    glob = plan.global_plan
    assert set(template["Parameters"]) - {"BootstrapVersion"} == {p.name for p in glob.parameters}
    records = _of_type(template, "AWS::Route53::RecordSet")
    by_name = {(r["Name"], r["SetIdentifier"]): r for r in records}
    assert set(by_name) == {
        (f"{label}.shopping.internal.", region)
        for label in ("assistant", "query-intent")
        for region in REGIONS
    }
    record = by_name[("assistant.shopping.internal.", "us-west-2")]
    assert record["AliasTarget"]["DNSName"] == {
        "Ref": names.global_parameter("us-west-2", "AssistantLoadBalancerDnsName")
    }
    assert record["AliasTarget"]["HostedZoneId"] == {
        "Ref": names.global_parameter("us-west-2", "AssistantLoadBalancerZoneId")
    }
    assert sum(r["Weight"] for r in records if r["Name"].startswith("assistant.")) == 100
    checks = _of_type(template, "AWS::Route53::HealthCheck")
    followed = {
        (
            c["HealthCheckConfig"]["AlarmIdentifier"]["Region"],
            c["HealthCheckConfig"]["AlarmIdentifier"]["Name"],
        )
        for c in checks
    }
    assert followed == {
        (region, names.region_health_alarm_name(plan.name, region, service))
        for region in REGIONS
        for service in ("assistant", "intent")
    }
    assert all(c["HealthCheckConfig"]["Type"] == "CLOUDWATCH_METRIC" for c in checks)
    [zone] = _of_type(template, "AWS::Route53::HostedZone")
    assert [v["VPCRegion"] for v in zone["VPCs"]] == list(REGIONS)
    assert zone["VPCs"][0]["VPCId"] == {"Ref": names.global_parameter("us-east-1", names.VPC_ID)}
    assert set(template["Outputs"]) == set(glob.outputs)


@pytest.mark.slow
def test_the_global_stack_runs_the_controller_every_period(global_template):
    template = global_template["template"]
    [rule] = _of_type(template, "AWS::Events::Rule")
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    [function] = _of_type(template, "AWS::Lambda::Function")
    assert function["Handler"] == "traffic_controller.handler.handler"
    parameters = {p["Name"] for p in _of_type(template, "AWS::SSM::Parameter")}
    assert parameters == {
        "/inferfleet/shopping-assistant/traffic/overrides",
        "/inferfleet/shopping-assistant/traffic/state",
        "/inferfleet/shopping-assistant/traffic/services/assistant",
        "/inferfleet/shopping-assistant/traffic/services/intent",
    }


@pytest.mark.slow
def test_the_emulated_global_stack_has_the_records_and_no_controller_nor_ssm_tags(
    tmp_path, global_template
):
    from collections import Counter

    from aws_cdk import App

    from inferfleet.infra.feature_flags import cdk_feature_flags
    from inferfleet.infra.global_stack import GlobalStack

    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml", emulator=True)
    app = App(context=cdk_feature_flags(), outdir=str(tmp_path), analytics_reporting=False)
    GlobalStack(app, plan.global_plan)
    app.synth()
    name = plan.global_plan.stack_name
    emulated = json.loads((tmp_path / f"{name}.template.json").read_text())["Resources"]
    real = global_template["template"]["Resources"]
    assert set(emulated) <= set(real)
    left_out = Counter(real[key]["Type"] for key in set(real) - set(emulated))
    assert left_out == Counter(
        {
            "AWS::Lambda::Function": 1,
            "AWS::Lambda::Permission": 1,
            "AWS::IAM::Role": 1,
            "AWS::IAM::Policy": 2,  # the acknowledged statements in a policy of their own
            "AWS::Logs::LogGroup": 1,
            "AWS::Events::Rule": 1,
            "AWS::CloudWatch::Alarm": 1,  # the controller's errors
        }
    )
    changed = {key for key in emulated if emulated[key] != real[key]}
    assert {real[key]["Type"] for key in changed} == {"AWS::SSM::Parameter"}
    for key in changed:  # moto cannot read their tags from a template
        untagged = {k: v for k, v in real[key]["Properties"].items() if k != "Tags"}
        assert emulated[key]["Properties"] == untagged
