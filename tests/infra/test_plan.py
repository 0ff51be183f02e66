"""The fleet plan: names within AWS limits, the reproductions of validate/synth disagreements,
and every field of the spec reaching the template it should."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferfleet.cli.synth import use_bundled_node
from inferfleet.constructs.finetune_handlers.layout import MAX_TRAINING_JOB_PREFIX
from inferfleet.constructs.props.model_service import READY_PATHS
from inferfleet.containers.common.serving_env import TRITON_GRPC_PORT, TRITON_HTTP_PORT
from inferfleet.infra import names
from inferfleet.infra.plan import build_plan, load_fleet_plan
from inferfleet.infra.spec import FleetSpec, FleetSpecError

REPO_ROOT = Path(__file__).resolve().parents[2]


def example() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "fleet.yaml").read_text())


def problems_in(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / "cdk.context.json").write_text((REPO_ROOT / "cdk.context.json").read_text())
    with pytest.raises(FleetSpecError) as raised:
        load_fleet_plan(path)
    return str(raised.value)


def test_a_long_fleet_name_gets_a_bounded_stable_training_job_prefix():
    document = example()
    document["name"] = "abcdefghijklmnopqrstuvwxyzabcd"
    spec = FleetSpec.model_validate(document)
    first = build_plan(spec, config_dir=REPO_ROOT).region("us-east-1").personalization.queue
    again = build_plan(spec, config_dir=REPO_ROOT).region("us-east-1").personalization.queue
    prefix = first.training_job_prefix
    assert len(prefix) <= MAX_TRAINING_JOB_PREFIX and prefix == again.training_job_prefix
    assert prefix.startswith("abcdefghijklmnopqrs") and not first.problems()
    # A short name stays readable.
    assert names.training_job_prefix("shop") == "shop-ft"


def test_batch_tasks_beyond_one_transaction_are_refused_at_validate(tmp_path):
    document = example()
    document["personalization"]["queue"].update(batch_tasks=200, batch_threshold=400)
    message = problems_in(tmp_path, document)
    assert "personalization.queue.batch_tasks: 200 is outside 2..49" in message
    assert "fleet.yaml:" in message


def test_more_batch_instances_than_tasks_are_refused_at_validate(tmp_path):
    document = example()
    document["personalization"]["queue"].update(batch_instances=10, batch_tasks=4)
    message = problems_in(tmp_path, document)
    assert "personalization.queue.batch_instances: 10 must be within 1..batch_tasks (4)" in message


def test_an_internet_facing_fleet_in_a_vpc_without_public_subnets_is_refused(tmp_path):
    document = example()
    document["regions"] = [
        {
            "name": "us-east-1",
            "vpc": {
                "vpc_id": "vpc-0abc12345def67890",
                "cidr": "10.1.0.0/16",
                "availability_zones": ["us-east-1a", "us-east-1b"],
                "private_subnet_ids": ["subnet-0aaa11111", "subnet-0aaa22222"],
            },
        }
    ]
    document["services"]["assistant"]["pools"][1]["regions"] = ["us-east-1"]
    document["network"] = {"internet_facing": True}
    message = problems_in(tmp_path, document)
    assert "network.internet_facing: an internet-facing load balancer needs public subnets" in (
        message
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"regions": ["us-east-1", "xx-north-9"]},
            "regions[1].name: xx-north-9 is not an AWS region",
        ),
        ({"tags": {"aws:team": "x"}}, "tags.aws:team: 'aws:team': tag keys starting with aws:"),
        ({"tags": {f"k{i}": "v" for i in range(50)}}, "tags: 50 tags; AWS allows 50"),
        (
            {
                "regions": [
                    {"name": "us-east-1", "availability_zones": ["us-east-1a", "us-east-1z"]}
                ]
            },
            "regions[0].availability_zones[1]: us-east-1 has no zone us-east-1z",
        ),
        (
            {
                "regions": [
                    {
                        "name": "us-east-1",
                        "certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/ab-1",
                    }
                ]
            },
            "regions[0].certificate_arn: the certificate is in eu-west-1",
        ),
        ({"network": {"allowed_cidrs": ["10.0.0.300/8"]}}, "network.allowed_cidrs[0]: "),
    ],
)
def test_what_cannot_deploy_is_refused_at_validate(tmp_path, change, field):
    document = {**example(), **change}
    if "regions" in change:
        document["services"]["assistant"]["pools"][1].pop("regions")
    message = problems_in(tmp_path, document)
    assert field in message


def plan_of(tmp_path: Path, document: dict[str, Any]):
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / "cdk.context.json").write_text((REPO_ROOT / "cdk.context.json").read_text())
    return load_fleet_plan(path)


def test_an_internet_facing_fleet_without_certificates_is_refused_at_validate(tmp_path):
    document = example()
    document["network"] = {"internet_facing": True}
    message = problems_in(tmp_path, document)
    assert "network.internet_facing: an internet-facing load balancer without certificate_arn" in (
        message
    )


def test_plaintext_on_the_internet_when_asked_for_is_a_warning_with_its_line(tmp_path):
    document = example()
    document["network"] = {"internet_facing": True, "allow_plaintext_internet": True}
    plan = plan_of(tmp_path, document)
    [warning] = [w for w in plan.warnings if w.field == "network.allow_plaintext_internet"]
    line = (
        yaml.safe_dump(document, sort_keys=False)
        .splitlines()
        .index("  allow_plaintext_internet: true")
    )
    assert warning.line == line + 1
    assert warning.located("fleet.yaml").startswith(
        f"fleet.yaml:{line + 1}: network.allow_plaintext_internet: the load balancer serves plain"
    )
    assert all(
        service.props.allow_plaintext_internet for r in plan.regions for service in r.services
    )


def test_cidrs_that_cover_the_internet_on_internal_load_balancers_are_refused(tmp_path):
    document = example()
    document["network"] = {"allowed_cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}
    message = problems_in(tmp_path, document)
    assert "network.allowed_cidrs: 0.0.0.0/1, 128.0.0.0/1 together cover every IPv4 address" in (
        message
    )


def test_an_artifact_of_a_whole_bucket_warns_once_per_service(tmp_path):
    document = example()
    document["services"]["intent"]["model"]["artifact"] = "s3://shopping-assistant-models"
    plan = plan_of(tmp_path, document)
    [warning] = plan.warnings
    assert warning.field == "services.intent.model.artifact"
    assert "the tasks may read every object of bucket shopping-assistant-models" in (
        warning.message
    )
    # The example itself has nothing to warn about.
    assert load_fleet_plan(REPO_ROOT / "fleet.yaml").warnings == ()


def test_two_service_names_with_one_output_key_are_refused(tmp_path):
    document = example()
    document["services"]["a1b"] = document["services"].pop("intent")
    document["services"]["a-1b"] = document["services"]["a1b"]
    message = problems_in(tmp_path, document)
    assert "give the same stack output A1bEndpoint; rename one" in message


def test_the_deploy_order_starts_with_the_canary():
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    assert plan.deploy_order[0] == names.regional_stack_name(plan.name, "us-east-1")
    assert plan.deploy_order == plan.stacks


def test_emulator_mode_is_a_plan_profile_and_says_what_it_left_out():
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml", emulator=True)
    region = plan.region("us-east-1")
    assert region.personalization is None and not region.cluster.dashboard
    assert all(not s.props.alarms and not s.props.request_count_scaling for s in region.services)
    assert all(s.props.image_uri for s in region.services)  # placeholders, nothing to build
    assert any("placeholder" in item for item in region.left_out)


# --- every field of the spec reaches the template ----------------------------------------

MAPPED_WEB_ACL = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/mapped/0123abcd"
MAPPED_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mapped/hf-AbCdEf"
MAPPED = {
    "name": "mapped",
    "account": "123456789012",
    "regions": [
        {
            "name": "us-east-1",
            "availability_zones": ["us-east-1a", "us-east-1b"],
            "web_acl_arn": MAPPED_WEB_ACL,
        }
    ],
    "services": {
        "chat": {
            "kind": "llm",
            "model": {
                "parameters_b": 8,
                "weights_dtype": "int8",
                "max_sequence_length": 2048,
                "max_batch_size": 12,
                "artifact": "s3://mapped-models/chat",
            },
            "routing": "round_robin",
            "pools": [{"instance_type": "inf2.24xlarge", "tensor_parallel": 4, "min": 1, "max": 3}],
            "container": {
                "image": "public.ecr.aws/example/chat:7",
                "port": 8080,
                "environment": {"HF_HOME": "/tmp/hf"},
                "secrets": {"HF_TOKEN": MAPPED_SECRET},
            },
            "health_check": {
                "path": "/ready",
                "interval_s": 20,
                "timeout_s": 7,
                "healthy_threshold": 3,
                "unhealthy_threshold": 4,
                "grace_period_s": 900,
            },
            "autoscaling": {
                "requests_per_target_per_minute": 77,
                "scale_in_cooldown_s": 420,
                "scale_out_cooldown_s": 45,
            },
            "stream_idle_timeout_s": 333,
            "deregistration_delay_s": 111,
        }
    },
    "network": {"allowed_cidrs": ["10.20.0.0/16"], "nat_gateways": 1},
    "batch_jobs": [
        {
            "name": "pairs",
            "model_artifact": "s3://mapped-models/pair/model.tar.gz",
            "input_prefix": "s3://mapped-data/in/",
            "output_prefix": "s3://mapped-data/out/",
            "instance_type": "ml.inf2.8xlarge",
            "instance_count": 3,
            "schedule": "rate(1 day)",
            "regions": ["us-east-1"],
            "image_uri": "public.ecr.aws/example/pair:3",
            "max_payload_mb": 4,
            "max_attempts": 2,
            "late_after_hours": 3,
            "max_run_hours": 5,
            "price_per_instance_hour": 2.5,
        }
    ],
    "alarm_emails": ["ops@example.com"],
    "tags": {"team": "mapping"},
    "traffic": {"zone": {"name": "mapped.internal"}, "services": ["chat"]},
}


@pytest.fixture(scope="module")
def mapped_template(tmp_path_factory) -> dict[str, Any]:
    from inferfleet.infra.app import build_app

    use_bundled_node()
    outdir = tmp_path_factory.mktemp("mapped")
    plan = build_plan(FleetSpec.model_validate(MAPPED))
    build_app(plan, outdir=str(outdir), nag=False).synth()
    return json.loads((outdir / "mapped-us-east-1.template.json").read_text())


def _of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


@pytest.mark.slow
def test_every_spec_field_reaches_the_template(mapped_template):
    template = mapped_template
    [task] = _of_type(template, "AWS::ECS::TaskDefinition")
    [container] = task["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert {k: env[k] for k in ("INFERFLEET_TP_DEGREE", "INFERFLEET_REPLICAS")} == {
        "INFERFLEET_TP_DEGREE": "4",
        "INFERFLEET_REPLICAS": "3",
    }
    assert env["INFERFLEET_MAX_SEQ_LEN"] == "2048" and env["INFERFLEET_MAX_NUM_SEQS"] == "12"
    assert env["INFERFLEET_QUANTIZATION"] == "int8" and env["INFERFLEET_DTYPE"] == "bfloat16"
    assert env["INFERFLEET_MODEL_ARTIFACT"] == "s3://mapped-models/chat/"
    assert env["HF_HOME"] == "/tmp/hf"
    assert container["Secrets"] == [{"Name": "HF_TOKEN", "ValueFrom": MAPPED_SECRET}]
    assert "HF_TOKEN" not in env
    assert container["Image"] == "public.ecr.aws/example/chat:7"
    assert container["PortMappings"][0]["ContainerPort"] == 8080
    devices = [d["HostPath"] for d in container["LinuxParameters"]["Devices"]]
    assert devices == [f"/dev/neuron{i}" for i in range(6)]

    [service] = _of_type(template, "AWS::ECS::Service")
    assert service["HealthCheckGracePeriodSeconds"] == 900
    assert service["DesiredCount"] == 1

    [group] = _of_type(template, "AWS::ElasticLoadBalancingV2::TargetGroup")
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert attributes["load_balancing.algorithm.type"] == "round_robin"
    assert attributes["deregistration_delay.timeout_seconds"] == "111"
    assert (group["Port"], group["HealthCheckPath"]) == (8080, "/ready")
    assert (group["HealthCheckIntervalSeconds"], group["HealthCheckTimeoutSeconds"]) == (20, 7)
    assert (group["HealthyThresholdCount"], group["UnhealthyThresholdCount"]) == (3, 4)

    [balancer] = _of_type(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    lb_attributes = {a["Key"]: a["Value"] for a in balancer["LoadBalancerAttributes"]}
    assert lb_attributes["idle_timeout.timeout_seconds"] == "333"
    ingress = [
        rule
        for group in _of_type(template, "AWS::EC2::SecurityGroup")
        for rule in group.get("SecurityGroupIngress", [])
    ]
    assert any(rule.get("CidrIp") == "10.20.0.0/16" for rule in ingress)

    [scalable] = _of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (scalable["MinCapacity"], scalable["MaxCapacity"]) == (1, 3)
    [policy] = _of_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 77
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (420, 45)

    [association] = _of_type(template, "AWS::WAFv2::WebACLAssociation")
    assert association["WebACLArn"] == MAPPED_WEB_ACL
    model_reads = [
        statement["Resource"]
        for policy in _of_type(template, "AWS::IAM::Policy")
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Action"] == "s3:GetObject"
    ]
    assert "arn:aws:s3:::mapped-models/chat/*" in model_reads

    [launch] = _of_type(template, "AWS::EC2::LaunchTemplate")
    assert launch["LaunchTemplateData"]["InstanceType"] == "inf2.24xlarge"
    assert len(_of_type(template, "AWS::EC2::NatGateway")) == 1
    [subscription] = _of_type(template, "AWS::SNS::Subscription")
    assert subscription["Endpoint"] == "ops@example.com"
    assert {"Key": "team", "Value": "mapping"} in _of_type(template, "AWS::ECS::Cluster")[0]["Tags"]
    zones = {s["AvailabilityZone"] for s in _of_type(template, "AWS::EC2::Subnet")}
    assert zones == {"us-east-1a", "us-east-1b"}
    behind_traffic = build_plan(FleetSpec.model_validate(MAPPED)).region("us-east-1")
    assert set(template["Outputs"]) == {
        names.service_endpoint("chat"),
        names.service_target_group_arn("chat"),
        *names.pool_outputs("chat", "inf2.24xlarge"),
        names.CLUSTER_NAME,
        names.batch_state_machine("pairs"),
        # what the traffic section's global stack reads
        *behind_traffic.service("chat").traffic_outputs.keys,
        names.VPC_ID,
    }
    # What bench --scale resizes: the pool's ECS service and its Auto Scaling group.
    ecs_key, asg_key = names.pool_outputs("chat", "inf2.24xlarge")
    service_id = template["Outputs"][ecs_key]["Value"]["Fn::GetAtt"][0]
    assert template["Resources"][service_id]["Type"] == "AWS::ECS::Service"
    group_id = template["Outputs"][asg_key]["Value"]["Ref"]
    assert template["Resources"][group_id]["Type"] == "AWS::AutoScaling::AutoScalingGroup"


@pytest.mark.slow
def test_every_batch_job_field_reaches_the_template(mapped_template):
    template = mapped_template
    [model] = _of_type(template, "AWS::SageMaker::Model")
    assert model["PrimaryContainer"]["Image"] == "public.ecr.aws/example/pair:3"
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://mapped-models/pair/model.tar.gz"
    [schedule] = _of_type(template, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "rate(1 day)"
    [machine] = _of_type(template, "AWS::StepFunctions::StateMachine")
    text = "".join(p for p in machine["DefinitionString"]["Fn::Join"][1] if isinstance(p, str))
    definition = json.loads(text.replace('"ModelName":"', '"ModelName":"x'))
    transform = definition["States"]["Transform"]
    assert transform["Parameters"]["TransformResources"] == {
        "InstanceType": "ml.inf2.8xlarge",
        "InstanceCount": 3,
    }
    assert transform["Parameters"]["MaxPayloadInMB"] == 4
    assert transform["Parameters"]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://mapped-data/in/"
    )
    assert (
        "s3://mapped-data/out/mapped-pairs-"
        in definition["States"]["Name"]["Parameters"]["output_path.$"]
    )
    assert transform["TimeoutSeconds"] == 5 * 3600
    assert definition["States"]["Transient"]["Choices"][0]["And"][0]["NumericLessThan"] == 1
    [summary] = [
        f for f in _of_type(template, "AWS::Lambda::Function") if "batch_summary" in f["Handler"]
    ]
    settings = json.loads(summary["Environment"]["Variables"]["BATCH_SUMMARY_SETTINGS"])
    assert settings["price_per_instance_hour"] == 2.5
    late = [
        a
        for a in _of_type(template, "AWS::CloudWatch::Alarm")
        if a.get("MetricName") == "ExecutionTime"
    ]
    assert [a["Threshold"] for a in late] == [3 * 3600 * 1000]
    assert names.batch_state_machine("pairs") in template["Outputs"]


# --- gRPC services ---------------------------------------------------------------------------


def grpc_example(with_certificates: bool) -> dict[str, Any]:
    document = example()
    document["services"]["assistant"] = {"protocol": "grpc", **document["services"]["assistant"]}
    if with_certificates:
        document["regions"] = [
            {"name": name, "certificate_arn": f"arn:aws:acm:{name}:123456789012:certificate/ab-1"}
            for name in document["regions"]
        ]
    return document


def test_grpc_without_a_certificate_is_refused_at_validate_with_its_line(tmp_path):
    document = grpc_example(with_certificates=False)
    message = problems_in(tmp_path, document)
    line = yaml.safe_dump(document, sort_keys=False).splitlines().index("    protocol: grpc")
    where = f"fleet.yaml:{line + 1}: services.assistant.protocol: "
    assert where + "grpc needs an HTTPS listener" in message
    assert "give the region's certificate_arn" in message
    # The http service next to it has nothing to say.
    assert "services.intent" not in message


def test_grpc_services_get_triton_grpc_port_and_readiness_from_the_props(tmp_path):
    plan = plan_of(tmp_path, grpc_example(with_certificates=True))
    for region in plan.regions:
        assistant, intent = region.service("assistant").props, region.service("intent").props
        assert (assistant.protocol, assistant.container_port) == ("grpc", TRITON_GRPC_PORT)
        assert assistant.health_check.path == READY_PATHS["grpc"]
        assert (intent.protocol, intent.container_port) == ("http", TRITON_HTTP_PORT)
        assert intent.health_check.path == READY_PATHS["http"]


@pytest.mark.slow
def test_a_service_behind_traffic_gets_its_named_health_alarm_and_outputs(mapped_template):
    template = mapped_template
    name = names.region_health_alarm_name("mapped", "us-east-1", "chat")
    [alarm] = [
        a for a in _of_type(template, "AWS::CloudWatch::Alarm") if a.get("AlarmName") == name
    ]
    assert alarm["MetricName"] == "HealthyHostCount" and alarm["Statistic"] == "Minimum"
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    plan = build_plan(FleetSpec.model_validate(MAPPED))
    region = plan.region("us-east-1")
    assert set(region.outputs) == set(template["Outputs"])
    target_group = template["Outputs"]["ChatTargetGroupFullName"]["Value"]
    assert target_group["Fn::Select"][0] == 5  # targetgroup/NAME/ID out of the ARN
    [pool_output] = region.service("chat").traffic_outputs.auto_scaling_groups
    assert pool_output == "ChatInf224xlargeAutoScalingGroup"


def test_the_endpoint_environment_of_the_fleet_file_reaches_the_serving_container(tmp_path):
    # Published models load their base weights from this folder of the serving image; a
    # fleet file must be able to say where it is.
    document = example()
    base = {"INFERFLEET_BASE_MODEL": "/opt/ml/base-model"}
    document["personalization"]["endpoint"]["environment"] = base
    endpoint = plan_of(tmp_path, document).region("us-east-1").personalization.endpoint
    assert endpoint.container_environment == base
    document["personalization"]["endpoint"]["environment"] = {"INFERFLEET_BASE_MODEL": 7}
    assert "personalization.endpoint.environment.INFERFLEET_BASE_MODEL" in problems_in(
        tmp_path, document
    )
