"""Template assertions for the serving constructs, used directly without a fleet file."""

import json

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk.assertions import Match, Template

from inferfleet.constructs.neuron_model_service import (
    HealthCheck,
    NeuronModelService,
    NeuronModelServiceProps,
    NeuronPool,
)
from inferfleet.constructs.neuron_serving_cluster import (
    ImportedVpc,
    NeuronServingCluster,
    NeuronServingClusterProps,
)
from inferfleet.constructs.props.model_service import KIND_DEFAULTS, default_grace_period_s
from inferfleet.constructs.props.problems import PropsError
from inferfleet.constructs.routing import Routing
from inferfleet.containers.common.serving_env import (
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    ServingEnv,
)
from inferfleet.infra.feature_flags import cdk_feature_flags

REGION = Environment(region="us-east-1")  # ALB access logging needs a concrete region
IMAGE = "public.ecr.aws/example/model-server:1"


def build_stack() -> tuple[Stack, NeuronModelService, NeuronModelService]:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Serving", env=REGION)
    cluster = NeuronServingCluster(
        stack, "Cluster", props=NeuronServingClusterProps(alarm_emails=("oncall@example.com",))
    )
    assistant = NeuronModelService(
        stack,
        "assistant",
        serving_cluster=cluster,
        props=NeuronModelServiceProps(
            image_uri=IMAGE,
            pools=(
                NeuronPool("inf2.48xlarge", tensor_parallel=24, min_capacity=2, max_capacity=20),
                NeuronPool("trn1.32xlarge", tensor_parallel=32, min_capacity=1, max_capacity=10),
            ),
            model_artifact="s3://models/assistant/",
            weights_gib=65,
        ),
    )
    intent = NeuronModelService(
        stack,
        "intent",
        serving_cluster=cluster,
        props=NeuronModelServiceProps(
            kind="classifier",
            image_uri=IMAGE,
            pools=(
                NeuronPool("inf2.xlarge", tensor_parallel=1, min_capacity=2, max_capacity=16),
                NeuronPool("inf2.24xlarge", tensor_parallel=4, min_capacity=0, max_capacity=4),
            ),
        ),
    )
    return stack, assistant, intent


@pytest.fixture(scope="module")
def built():
    stack, assistant, intent = build_stack()
    return Template.from_stack(stack), stack, assistant, intent


def container_of(template: Template, stack: Stack, task: ecs.TaskDefinition) -> dict:
    logical_id = stack.get_logical_id(task.node.default_child)
    resource = template.to_json()["Resources"][stack.resolve(logical_id)]
    return resource["Properties"]["ContainerDefinitions"][0]


@pytest.mark.parametrize(
    ("service", "instance_type", "devices", "tp", "cores"),
    [
        ("assistant", "inf2.48xlarge", 12, 24, 24),
        ("assistant", "trn1.32xlarge", 16, 32, 32),
        ("intent", "inf2.xlarge", 1, 1, 2),
        ("intent", "inf2.24xlarge", 6, 4, 12),
    ],
)
def test_task_maps_exactly_the_instance_devices(built, service, instance_type, devices, tp, cores):
    template, stack, assistant, intent = built
    model_service = {"assistant": assistant, "intent": intent}[service]
    container = container_of(template, stack, model_service.task_definitions[instance_type])
    mapped = container["LinuxParameters"]["Devices"]
    assert [d["HostPath"] for d in mapped] == [f"/dev/neuron{i}" for i in range(devices)]
    assert all(d["ContainerPath"] == d["HostPath"] for d in mapped)
    assert container["LinuxParameters"]["Capabilities"]["Add"] == ["IPC_LOCK"]
    assert {"Name": "memlock", "SoftLimit": -1, "HardLimit": -1} in container["Ulimits"]
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert environment["INFERFLEET_NEURON_CORES"] == str(cores)
    assert environment["INFERFLEET_INSTANCE_TYPE"] == instance_type
    assert environment["NEURON_RT_VISIBLE_CORES"] == f"0-{cores - 1}"
    assert environment["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environment["INFERFLEET_MODEL_ARTIFACT"] == (
        "s3://models/assistant/" if service == "assistant" else ""
    )
    # The image reads back exactly what the construct wrote, through the one contract.
    # (The compile cache URL is a CloudFormation join in the template: left out here.)
    contract = ServingEnv.from_env({k: v for k, v in environment.items() if isinstance(v, str)})
    assert contract.kind == model_service.kind and contract.neuron_cores == cores
    if service == "assistant":
        assert environment["INFERFLEET_TP_DEGREE"] == str(tp)
        assert environment["INFERFLEET_REPLICAS"] == str(cores // tp)
        assert (contract.llm.tp_degree, contract.llm.replicas) == (tp, cores // tp)
    else:
        # A classifier is sent only what a classifier reads.
        assert contract.llm is None
        assert not {"INFERFLEET_TP_DEGREE", "INFERFLEET_MAX_NUM_SEQS"} & set(environment)


def test_target_group_routes_by_least_outstanding_requests(built):
    template, *_ = built
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "TargetType": "ip",
            "TargetGroupAttributes": Match.array_with(
                [{"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"}]
            ),
            "HealthCheckPath": "/v2/health/ready",
        },
    )


def test_both_pools_register_in_one_target_group(built):
    template, stack, assistant, _ = built
    target_group_id = stack.resolve(stack.get_logical_id(assistant.target_group.node.default_child))
    services = template.find_resources("AWS::ECS::Service")
    registered = [
        props["Properties"]["LoadBalancers"][0]["TargetGroupArn"]["Ref"]
        for props in services.values()
        if props["Properties"]["LoadBalancers"][0]["TargetGroupArn"]["Ref"] == target_group_id
    ]
    assert len(registered) == 2
    assert len(template.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup")) == 2


def test_launch_templates_require_imdsv2_and_no_launch_configurations(built):
    template, *_ = built
    template.resource_count_is("AWS::AutoScaling::LaunchConfiguration", 0)
    launch_templates = template.find_resources("AWS::EC2::LaunchTemplate")
    assert len(launch_templates) == 4
    for resource in launch_templates.values():
        data = resource["Properties"]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        root = data["BlockDeviceMappings"][0]["Ebs"]
        assert root["Encrypted"] is True and root["VolumeType"] == "gp3"
    template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": Match.object_like(
                {
                    "InstanceType": "inf2.48xlarge",
                    # 100 GiB base + 65 GiB weights x 2 (compiled copy) x 1.2
                    "BlockDeviceMappings": [
                        Match.object_like({"Ebs": Match.object_like({"VolumeSize": 256})})
                    ],
                }
            )
        },
    )


def test_capacity_providers_use_managed_scaling_and_the_neuron_ami(built):
    template, *_ = built
    template.resource_count_is("AWS::ECS::CapacityProvider", 4)
    template.has_resource_properties(
        "AWS::ECS::CapacityProvider",
        {
            "AutoScalingGroupProvider": Match.object_like(
                {
                    "ManagedScaling": Match.object_like(
                        {"Status": "ENABLED", "TargetCapacity": 100}
                    ),
                    "ManagedTerminationProtection": "ENABLED",
                }
            )
        },
    )
    ami_parameters = [p["Default"] for p in template.to_json()["Parameters"].values()]
    assert "/aws/service/ecs/optimized-ami/amazon-linux-2/inf/recommended/image_id" in (
        ami_parameters
    )


def test_services_have_circuit_breaker_grace_and_one_task_per_instance(built):
    template, *_ = built
    template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "DeploymentConfiguration": Match.object_like(
                {
                    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                    "MinimumHealthyPercent": 100,
                }
            ),
            "HealthCheckGracePeriodSeconds": default_grace_period_s(65),
            "PlacementConstraints": [{"Type": "distinctInstance"}],
            "DesiredCount": 2,
        },
    )


def test_cluster_has_container_insights(built):
    template, *_ = built
    template.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": [{"Name": "containerInsights", "Value": "enhanced"}]},
    )


def load_balancer_attributes(template: Template) -> list[dict[str, str]]:
    return [
        {a["Key"]: a["Value"] for a in lb["Properties"]["LoadBalancerAttributes"]}
        for lb in template.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    ]


def test_load_balancers_log_access_and_suit_streams(built):
    template, *_ = built
    attributes = load_balancer_attributes(template)
    assert sorted(a["idle_timeout.timeout_seconds"] for a in attributes) == ["60", "600"]
    assert all(a["access_logs.s3.enabled"] == "true" for a in attributes)
    assert all(a["routing.http.drop_invalid_header_fields.enabled"] == "true" for a in attributes)
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"}
    )
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": Match.any_value(),
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
        },
    )


def test_deregistration_delay_by_kind(built):
    template, *_ = built
    delays = sorted(
        next(
            a["Value"]
            for a in tg["Properties"]["TargetGroupAttributes"]
            if a["Key"] == "deregistration_delay.timeout_seconds"
        )
        for tg in template.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup").values()
    )
    assert delays == ["30", "300"]


def test_scaling_on_requests_per_target(built):
    template, *_ = built
    policies = template.find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        config = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
            "ALBRequestCountPerTarget"
        )
    targets = sorted(
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
        for p in policies.values()
    )
    assert targets == [120, 120, 60000, 60000]


def test_alarms_for_5xx_unhealthy_hosts_and_p99(built):
    template, *_ = built
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    metrics = sorted(a["Properties"]["MetricName"] for a in alarms.values())
    assert metrics == sorted(
        ["HTTPCode_Target_5XX_Count", "UnHealthyHostCount", "TargetResponseTime"] * 2
    )
    p99 = sorted(
        a["Properties"]["Threshold"]
        for a in alarms.values()
        if a["Properties"]["MetricName"] == "TargetResponseTime"
    )
    assert p99 == [0.01, 1]
    assert all(a["Properties"]["AlarmActions"] for a in alarms.values())
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email"})


def test_task_role_reads_only_the_model_prefix(built):
    template, *_ = built
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    model_reads = [s for s in statements if s.get("Resource") == "arn:aws:s3:::models/assistant/*"]
    assert [s["Action"] for s in model_reads] == ["s3:GetObject"]


def test_https_listener_with_redirect():
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Tls", env=REGION)
    cluster = NeuronServingCluster(stack, "Cluster")
    NeuronModelService(
        stack,
        "svc",
        serving_cluster=cluster,
        props=NeuronModelServiceProps(
            image_uri=IMAGE,
            pools=(NeuronPool("inf2.xlarge", 1),),
            certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc",
            routing=Routing.ROUND_ROBIN,
            idle_timeout_s=900,
        ),
    )
    template = Template.from_stack(stack)
    # Internal, and still HTTPS: a certificate is used wherever it is given.
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internal"}
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 443, "Protocol": "HTTPS"}
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Port": 80, "DefaultActions": [Match.object_like({"Type": "redirect"})]},
    )
    assert load_balancer_attributes(template)[0]["idle_timeout.timeout_seconds"] == "900"
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "TargetGroupAttributes": Match.array_with(
                [{"Key": "load_balancing.algorithm.type", "Value": "round_robin"}]
            )
        },
    )


CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/abc"


def grpc_template(**changes) -> Template:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Grpc", env=REGION)
    cluster = NeuronServingCluster(stack, "Cluster")
    NeuronModelService(
        stack,
        "svc",
        serving_cluster=cluster,
        props=NeuronModelServiceProps(
            image_uri=IMAGE,
            pools=(NeuronPool("inf2.xlarge", 1),),
            protocol="grpc",
            certificate_arn=CERTIFICATE,
            **changes,
        ),
    )
    return Template.from_stack(stack)


def test_grpc_service_checks_triton_grpc_readiness_behind_https_and_keeps_lor():
    template = grpc_template()
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Protocol": "HTTP",
            "ProtocolVersion": "GRPC",
            "Port": TRITON_GRPC_PORT,
            "HealthCheckPath": "/inference.GRPCInferenceService/ServerReady",
            "Matcher": {"GrpcCode": "0"},
            "TargetGroupAttributes": Match.array_with(
                [{"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"}]
            ),
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 443, "Protocol": "HTTPS"}
    )
    # Streams stay open between tokens: the llm idle timeout, not the ALB's 60 s.
    assert load_balancer_attributes(template)[0]["idle_timeout.timeout_seconds"] == str(
        KIND_DEFAULTS["llm"].idle_timeout_s
    )
    [task] = template.find_resources("AWS::ECS::TaskDefinition").values()
    [container] = task["Properties"]["ContainerDefinitions"]
    assert container["PortMappings"] == [{"ContainerPort": TRITON_GRPC_PORT, "Protocol": "tcp"}]
    # The tasks take the load balancer's traffic on the gRPC port.
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "FromPort": TRITON_GRPC_PORT,
            "ToPort": TRITON_GRPC_PORT,
            "Description": "model server, from the load balancer only",
        },
    )


def test_http_service_keeps_the_http_port_path_and_status_code(built):
    template = built[0]
    groups = template.find_resources("AWS::ElasticLoadBalancingV2::TargetGroup").values()
    for group in groups:
        properties = group["Properties"]
        assert "ProtocolVersion" not in properties
        assert properties["Port"] == TRITON_HTTP_PORT
        assert properties["HealthCheckPath"] == "/v2/health/ready"
        assert properties["Matcher"] == {"HttpCode": "200"}


def test_grpc_health_check_path_given_is_used():
    template = grpc_template(health_check=HealthCheck(path="/my.Health/Check"))
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup", {"HealthCheckPath": "/my.Health/Check"}
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pools": ()}, "pools: give at least one pool"),
        (
            {"protocol": "grpc"},
            "protocol: grpc needs an HTTPS listener (the load balancer takes gRPC over HTTPS "
            "only), and there is no certificate_arn",
        ),
        (
            {
                "protocol": "grpc",
                "certificate_arn": CERTIFICATE,
                "health_check": HealthCheck(path="/v2/health/ready"),
            },
            "health_check.path: '/v2/health/ready' is not a gRPC method",
        ),
        ({"protocol": "websocket"}, "protocol: 'websocket' is not a protocol; use http or grpc"),
        (
            {"pools": (NeuronPool("inf2.48xlarge", 5),)},
            "pools[0].tensor_parallel: 5 does not divide the 24 NeuronCores",
        ),
        (
            {"pools": (NeuronPool("inf2.xlarge", 1, 3, 2),)},
            "pools[0].min_capacity: min 3 is greater than max 2",
        ),
        (
            {"pools": (NeuronPool("inf2.xlarge", 1), NeuronPool("inf2.xlarge", 2))},
            "pools[1].instance_type: a second pool of inf2.xlarge",
        ),
        (
            {"pools": (NeuronPool("g5.xlarge", 1),)},
            "pools[0].instance_type: unknown instance type 'g5.xlarge'",
        ),
        (
            {"certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"},
            "certificate_arn: the certificate is in eu-west-1, but the load balancer is in "
            "us-east-1",
        ),
        ({"image_asset_path": "/srv/image"}, "image_uri: both an image URI and an image asset"),
        ({"allowed_cidrs": ("10.0.0.0/33",)}, "allowed_cidrs[0]: '10.0.0.0/33' is not an IPv4"),
        ({"environment": {"INFERFLEET_TP_DEGREE": "8"}}, "environment: INFERFLEET_TP_DEGREE"),
        (
            {"internet_facing": True},
            "internet_facing: an internet-facing load balancer without certificate_arn",
        ),
        (
            {"allowed_cidrs": ("0.0.0.0/1", "128.0.0.0/1")},
            "allowed_cidrs: 0.0.0.0/1, 128.0.0.0/1 together cover every IPv4 address",
        ),
    ],
)
def test_props_are_validated_at_construction_with_the_construct_path(changes, message):
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Bad", env=REGION)
    cluster = NeuronServingCluster(stack, "Cluster")
    props = NeuronModelServiceProps(
        **{"pools": (NeuronPool("inf2.xlarge", 1),), "image_uri": IMAGE, **changes}
    )
    with pytest.raises(PropsError) as raised:
        NeuronModelService(stack, "svc", serving_cluster=cluster, props=props)
    assert str(raised.value).startswith("Bad/svc: ")
    assert message in str(raised.value)
    # The same rule, from the props alone, is what `inferfleet validate` reports.
    problems = props.problems(region="us-east-1")
    assert any(message in f"{p.field}: {p.message}" for p in problems)


def test_internet_facing_needs_public_subnets():
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Private", env=REGION)
    cluster_props = NeuronServingClusterProps(
        vpc=ImportedVpc(
            vpc_id="vpc-0abc12345def67890",
            cidr="10.1.0.0/16",
            availability_zones=("us-east-1a", "us-east-1b"),
            private_subnet_ids=("subnet-0abc12345", "subnet-0abc12346"),
        )
    )
    cluster = NeuronServingCluster(stack, "Cluster", props=cluster_props)
    props = NeuronModelServiceProps(
        pools=(NeuronPool("inf2.xlarge", 1),), image_uri=IMAGE, internet_facing=True
    )
    with pytest.raises(PropsError, match="internet_facing: an internet-facing load balancer"):
        NeuronModelService(stack, "svc", serving_cluster=cluster, props=props)


def test_built_in_images_build_from_containers_without_the_other_images(tmp_path):
    app = App(context=cdk_feature_flags(), outdir=str(tmp_path))
    stack = Stack(app, "BuiltIn", env=REGION)
    cluster = NeuronServingCluster(stack, "Cluster")
    NeuronModelService(
        stack,
        "svc",
        serving_cluster=cluster,
        props=NeuronModelServiceProps(pools=(NeuronPool("inf2.xlarge", 1),)),
    )
    app.synth()
    assets = json.loads((tmp_path / "BuiltIn.assets.json").read_text())
    [image] = assets["dockerImages"].values()
    assert image["source"]["dockerFile"] == "llm-neuron/Dockerfile"
    staged = tmp_path / image["source"]["directory"]
    assert (staged / "common" / "serve.sh").is_file()
    assert (staged / "common" / "serving_env.py").is_file()
    assert (staged / "llm-neuron" / "llm_engine").is_dir()
    assert not (staged / "intent-neuron").exists() and not (staged / "finetune").exists()
    assert not list(staged.glob("*.py")), "local tooling stays out of the image"


WEB_ACL = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/edge/1234abcd"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf"
PARAMETER = "arn:aws:ssm:us-east-1:123456789012:parameter/inferfleet/api-key"


def public_service(**changes) -> tuple[Stack, NeuronModelService]:
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Public", env=REGION)
    cluster = NeuronServingCluster(stack, "Cluster")
    service = NeuronModelService(
        stack,
        "svc",
        serving_cluster=cluster,
        props=NeuronModelServiceProps(
            image_uri=IMAGE,
            pools=(NeuronPool("inf2.xlarge", 1),),
            internet_facing=True,
            **changes,
        ),
    )
    return stack, service


def test_an_open_internet_facing_load_balancer_gets_one_rule_per_port_and_its_web_acl():
    stack, service = public_service(
        certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/abc",
        allowed_cidrs=("0.0.0.0/1", "128.0.0.0/1"),
        web_acl_arn=WEB_ACL,
    )
    template = Template.from_stack(stack)
    group = stack.resolve(service.load_balancer_security_group.security_group_id)
    ingress = template.find_resources("AWS::EC2::SecurityGroup")[group["Fn::GetAtt"][0]]
    rules = sorted(
        (rule["CidrIp"], rule["FromPort"]) for rule in ingress["Properties"]["SecurityGroupIngress"]
    )
    # Split blocks are one 0.0.0.0/0 rule, so cdk-nag (EC23) and checkov see what it is.
    assert rules == [("0.0.0.0/0", 80), ("0.0.0.0/0", 443)]
    template.has_resource_properties(
        "AWS::WAFv2::WebACLAssociation",
        {"WebACLArn": WEB_ACL, "ResourceArn": {"Ref": Match.string_like_regexp("svcLoadBalancer")}},
    )


def test_warnings_of_the_props_are_cdk_warnings_on_the_construct():
    _, service = public_service(allow_plaintext_internet=True)
    warnings = [entry.data for entry in service.node.metadata if entry.type == "aws:cdk:warning"]
    assert any(
        "allow_plaintext_internet: the load balancer serves plain HTTP" in w for w in warnings
    )


def test_secrets_reach_the_container_from_their_arns_and_only_the_execution_role_reads_them():
    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Secrets", env=REGION)
    cluster = NeuronServingCluster(stack, "Cluster")
    service = NeuronModelService(
        stack,
        "svc",
        serving_cluster=cluster,
        props=NeuronModelServiceProps(
            image_uri=IMAGE,
            pools=(NeuronPool("inf2.xlarge", 1),),
            secrets={"HF_TOKEN": f"{SECRET}:token", "API_KEY": PARAMETER},
        ),
    )
    template = Template.from_stack(stack)
    container = container_of(template, stack, service.task_definitions["inf2.xlarge"])
    assert {s["Name"]: s["ValueFrom"] for s in container["Secrets"]} == {
        "HF_TOKEN": f"{SECRET}:token::",
        "API_KEY": PARAMETER,
    }
    assert not {"HF_TOKEN", "API_KEY"} & {e["Name"] for e in container["Environment"]}
    reads = {
        json.dumps(statement["Resource"]): statement["Action"]
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in statement["Action"]
        or "ssm:GetParameters" in statement["Action"]
    }
    assert set(reads) == {json.dumps(SECRET), json.dumps(PARAMETER)}


def _existing_resources(stack: Stack):
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_elasticloadbalancingv2 as elbv2
    from aws_cdk import aws_sns as sns

    vpc = ec2.Vpc(
        stack,
        "TheirVpc",
        max_azs=2,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="edge", subnet_type=ec2.SubnetType.PUBLIC),
            ec2.SubnetConfiguration(name="apps", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            ec2.SubnetConfiguration(name="gpu", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        ],
    )
    cluster = ecs.Cluster(stack, "TheirCluster", vpc=vpc)
    balancer = elbv2.ApplicationLoadBalancer(stack, "TheirBalancer", vpc=vpc)
    topic = sns.Topic(stack, "TheirTopic")
    return vpc, cluster, balancer, topic


def test_a_service_on_an_existing_cluster_subnets_load_balancer_and_topic():
    from aws_cdk import aws_ec2 as ec2

    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Theirs", env=REGION)
    vpc, cluster, balancer, topic = _existing_resources(stack)
    serving = NeuronServingCluster(stack, "Serving", cluster=cluster, alarm_topic=topic)
    service = NeuronModelService(
        stack,
        "assistant",
        serving_cluster=serving,
        vpc_subnets=ec2.SubnetSelection(subnet_group_name="gpu"),
        load_balancer=balancer,
        props=NeuronModelServiceProps(
            image_uri=IMAGE, pools=(NeuronPool("inf2.xlarge", tensor_parallel=1),)
        ),
    )
    template = Template.from_stack(stack)
    resources = template.to_json()["Resources"]
    # Theirs, not new ones: one cluster, one load balancer, one topic, no alarm key.
    assert serving.cluster is cluster and serving.alarm_topic is topic
    template.resource_count_is("AWS::ECS::Cluster", 1)
    template.resource_count_is("AWS::ElasticLoadBalancingV2::LoadBalancer", 1)
    template.resource_count_is("AWS::SNS::Topic", 1)
    template.resource_count_is("AWS::KMS::Key", 0)
    balancer_id = stack.resolve(stack.get_logical_id(balancer.node.default_child))
    [listener] = template.find_resources("AWS::ElasticLoadBalancingV2::Listener").values()
    assert listener["Properties"]["LoadBalancerArn"] == {"Ref": balancer_id}
    gpu_subnets = [
        {"Ref": stack.resolve(stack.get_logical_id(subnet.node.default_child))}
        for subnet in vpc.select_subnets(subnet_group_name="gpu").subnets
    ]
    [group] = template.find_resources("AWS::AutoScaling::AutoScalingGroup").values()
    assert group["Properties"]["VPCZoneIdentifier"] == gpu_subnets
    [ecs_service] = template.find_resources("AWS::ECS::Service").values()
    network = ecs_service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["Subnets"] == gpu_subnets
    topic_id = stack.resolve(stack.get_logical_id(topic.node.default_child))
    for alarm in template.find_resources("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    capacity = next(iter(service.pools.values()))
    assert resources[
        stack.resolve(stack.get_logical_id(capacity.auto_scaling_group.node.default_child))
    ]["Properties"]["NotificationConfigurations"][0]["TopicARN"] == {"Ref": topic_id}


def test_an_existing_load_balancer_must_be_what_the_props_say():
    from aws_cdk import aws_elasticloadbalancingv2 as elbv2

    app = App(context=cdk_feature_flags())
    stack = Stack(app, "Theirs", env=REGION)
    vpc, cluster, _, _ = _existing_resources(stack)
    public = elbv2.ApplicationLoadBalancer(stack, "Public", vpc=vpc, internet_facing=True)
    serving = NeuronServingCluster(stack, "Serving", cluster=cluster)
    with pytest.raises(
        PropsError,
        match=r"Theirs/assistant: internet_facing: is False but the given load balancer is "
        "internet-facing",
    ):
        NeuronModelService(
            stack,
            "assistant",
            serving_cluster=serving,
            load_balancer=public,
            props=NeuronModelServiceProps(
                image_uri=IMAGE, pools=(NeuronPool("inf2.xlarge", tensor_parallel=1),)
            ),
        )
