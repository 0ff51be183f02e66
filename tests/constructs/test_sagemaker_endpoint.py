"""Template assertions for the SageMaker endpoint construct, plus its cdk-nag report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Environment, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from inferfleet.constructs.props.problems import PropsError
from inferfleet.constructs.routing import Routing
from inferfleet.constructs.sagemaker_endpoint import (
    HostingMode,
    SageMakerEndpoint,
    SageMakerEndpointProps,
)
from inferfleet.infra.feature_flags import cdk_feature_flags

REGION = Environment(region="eu-west-1")


def _stack(app: App | None = None, env: Environment | None = REGION) -> Stack:
    return Stack(app or App(context=cdk_feature_flags()), "Serving", env=env)


def _endpoint(stack: Stack, construct_id: str, **fields) -> SageMakerEndpoint:
    return SageMakerEndpoint(stack, construct_id, props=SageMakerEndpointProps(**fields))


@pytest.fixture(scope="module")
def mme() -> tuple[Template, SageMakerEndpoint]:
    stack = _stack()
    endpoint = _endpoint(
        stack, "Users", mode=HostingMode.MULTI_MODEL, min_capacity=2, max_capacity=8
    )
    return Template.from_stack(stack), endpoint


def test_multi_model_mode_loads_from_the_model_prefix(mme) -> None:
    template, endpoint = mme
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "EnableNetworkIsolation": True,
            "PrimaryContainer": {
                "Mode": "MultiModel",
                "Image": endpoint.image_uri,
                "ModelDataUrl": {
                    "Fn::Join": ["", ["s3://", {"Ref": Match.any_value()}, "/models/"]]
                },
            },
        },
    )


def test_the_image_comes_from_the_sdk_tables_for_the_stack_region(mme) -> None:
    _, endpoint = mme
    assert endpoint.image_uri.startswith("763104351884.dkr.ecr.eu-west-1.amazonaws.com/")
    assert "/sagemaker-tritonserver:" in endpoint.image_uri


def test_routing_is_least_outstanding_requests_by_default_and_random_on_request(mme) -> None:
    template, _ = mme
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like(
                    {
                        "InstanceType": "ml.g5.2xlarge",
                        "InitialInstanceCount": 2,
                        "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
                    }
                )
            ]
        },
    )
    stack = _stack()
    _endpoint(stack, "Random", routing=Routing.RANDOM, image_uri="example/image:1")
    Template.from_stack(stack).has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like({"RoutingConfig": {"RoutingStrategy": "RANDOM"}})
            ]
        },
    )


def test_variant_autoscaling_tracks_invocations_per_instance(mme) -> None:
    template, _ = mme
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": 2,
            "MaxCapacity": 8,
        },
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "TargetValue": 100,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                }
            ),
        },
    )


def test_model_bucket_is_versioned_encrypted_private_and_ssl_only(mme) -> None:
    template, _ = mme
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    policy = template.find_resources("AWS::S3::BucketPolicy")
    [statement] = [
        s
        for resource in policy.values()
        for s in resource["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
    ]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_execution_role_reads_only_the_model_prefix(mme) -> None:
    template, _ = mme
    policies = template.find_resources("AWS::IAM::Policy")
    statements = [
        s
        for policy in policies.values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    # Statements on "*" live in their own acknowledged policy, none in the default policy.
    for logical_id, policy in policies.items():
        wildcards = [
            s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Resource"] == "*"
        ]
        if "DefaultPolicy" in logical_id:
            assert wildcards == []
        else:
            assert sorted(str(s["Action"]) for s in wildcards) == [
                "cloudwatch:PutMetricData",
                "ecr:GetAuthorizationToken",
            ]
    s3_statements = [s for s in statements if str(s["Action"]).startswith("s3:")]
    actions = sorted(str(s["Action"]) for s in s3_statements)
    assert actions == ["s3:GetObject", "s3:ListBucket"]
    get = next(s for s in s3_statements if s["Action"] == "s3:GetObject")
    assert get["Resource"]["Fn::Join"][1][-1] == "/models/*"
    listing = next(s for s in s3_statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["models/*"]}}
    ecr = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    assert ecr["Resource"].endswith(":repository/sagemaker-tritonserver")
    assert not any(s["Action"] in ("s3:*", "*") for s in statements)


def test_mme_alarms_cover_latency_errors_cache_hits_and_loaded_models(mme) -> None:
    template, endpoint = mme
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    by_metric = {a["Properties"]["MetricName"]: a["Properties"] for a in alarms.values()}
    assert set(by_metric) == {
        "ModelLatency",
        "Invocation5XXErrors",
        "ModelCacheHit",
        "LoadedModelCount",
    }
    assert by_metric["ModelLatency"]["ExtendedStatistic"] == "p99"
    assert by_metric["ModelLatency"]["Threshold"] == 1_000_000  # microseconds
    assert by_metric["ModelCacheHit"]["ComparisonOperator"] == "LessThanThreshold"
    assert set(endpoint.alarms) == {
        "ModelLatencyP99",
        "Invocation5XXErrors",
        "ModelCacheHit",
        "LoadedModelCount",
    }


def test_single_model_mode_has_no_mme_alarms_and_points_at_its_artifact() -> None:
    stack = _stack()
    endpoint = _endpoint(
        stack,
        "Codegen",
        image_uri="111122223333.dkr.ecr.eu-west-1.amazonaws.com/codegen:1",
        model_artifact="codegen2-7b/model.tar.gz",
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": {
                "Mode": "SingleModel",
                "Image": "111122223333.dkr.ecr.eu-west-1.amazonaws.com/codegen:1",
                "ModelDataUrl": {
                    "Fn::Join": [
                        "",
                        ["s3://", {"Ref": Match.any_value()}, "/models/codegen2-7b/model.tar.gz"],
                    ]
                },
            }
        },
    )
    assert set(endpoint.alarms) == {"ModelLatencyP99", "Invocation5XXErrors"}


def test_two_endpoints_fit_in_one_stack() -> None:
    stack = _stack()
    _endpoint(stack, "Users", mode=HostingMode.MULTI_MODEL)
    _endpoint(stack, "Codegen", image_uri="example/image:1")
    Template.from_stack(stack).resource_count_is("AWS::SageMaker::Endpoint", 2)


# --- inference components: a base model, adapters on it, copies down to zero -------------


def _components(**fields):  # type: ignore[no-untyped-def]
    return {
        "mode": HostingMode.INFERENCE_COMPONENTS,
        "instance_type": "ml.inf2.24xlarge",
        "base_model_memory_gib": 40.0,
        "endpoint_name": "chat-personalization",
        "base_component_name": "chat-base-model",
        "model_artifact": "base/llama-8b.tar.gz",
        **fields,
    }


@pytest.fixture(scope="module")
def components() -> tuple[Template, SageMakerEndpoint]:
    stack = _stack()
    endpoint = _endpoint(stack, "Adapters", **_components())
    return Template.from_stack(stack), endpoint


def test_components_config_has_no_model_and_scales_instances_from_zero(components) -> None:
    template, _ = components
    [config] = template.find_resources("AWS::SageMaker::EndpointConfig").values()
    properties = config["Properties"]
    [variant] = properties["ProductionVariants"]
    assert "ModelName" not in variant
    [role_id, attribute] = properties["ExecutionRoleArn"]["Fn::GetAtt"]
    assert role_id.startswith("AdaptersExecutionRole") and attribute == "Arn"
    assert variant["ManagedInstanceScaling"] == {
        "Status": "ENABLED",
        "MinInstanceCount": 0,
        "MaxInstanceCount": 1,  # 4 copies of 3 NeuronCores fill one inf2.24xlarge (12)
    }
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert variant["InstanceType"] == "ml.inf2.24xlarge" and variant["InitialInstanceCount"] == 1
    template.has_resource_properties(
        "AWS::SageMaker::Endpoint", {"EndpointName": "chat-personalization"}
    )


def test_the_base_component_is_sized_in_neuron_cores_and_host_memory(components) -> None:
    template, endpoint = components
    [component] = template.find_resources("AWS::SageMaker::InferenceComponent").values()
    properties = component["Properties"]
    [model_id] = template.find_resources("AWS::SageMaker::Model")
    assert properties["InferenceComponentName"] == "chat-base-model"
    assert properties["VariantName"] == "AllTraffic"
    [endpoint_id] = template.find_resources("AWS::SageMaker::Endpoint")
    assert properties["EndpointName"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    assert properties["Specification"] == {
        "ModelName": {"Fn::GetAtt": [model_id, "ModelName"]},
        "ComputeResourceRequirements": {
            # 40 GiB over 16 GiB NeuronCores: 3 of the 12, four copies per instance.
            "NumberOfAcceleratorDevicesRequired": 3,
            "MinMemoryRequiredInMb": int(384 * 1024 / 4 * 0.8),
        },
    }
    assert properties["RuntimeConfig"] == {"CopyCount": 1}
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like(
                {
                    "Mode": "SingleModel",
                    "ModelDataUrl": {
                        "Fn::Join": [
                            "",
                            ["s3://", {"Ref": Match.any_value()}, "/models/base/llama-8b.tar.gz"],
                        ]
                    },
                }
            )
        },
    )
    assert "/djl-inference:" in endpoint.image_uri and "neuronx" in endpoint.image_uri
    [model] = template.find_resources("AWS::SageMaker::Model").values()
    assert model["Properties"]["PrimaryContainer"]["Environment"] == {
        "OPTION_ENABLE_LORA": "true",
        "OPTION_TENSOR_PARALLEL_DEGREE": "3",
    }
    assert endpoint.base_component_name == "chat-base-model"


def test_copies_scale_to_zero_and_a_failed_request_brings_one_back(components) -> None:
    template, _ = components
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": "inference-component/chat-base-model",
            "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
            "MinCapacity": 0,
            "MaxCapacity": 4,
        },
    )
    policies = {
        p["Properties"]["PolicyType"]: (logical_id, p["Properties"])
        for logical_id, p in template.find_resources(
            "AWS::ApplicationAutoScaling::ScalingPolicy"
        ).items()
    }
    assert set(policies) == {"TargetTrackingScaling", "StepScaling"}
    tracking = policies["TargetTrackingScaling"][1]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
    }
    step_id, step = policies["StepScaling"]
    assert step["StepScalingPolicyConfiguration"] == {
        "AdjustmentType": "ChangeInCapacity",
        "MetricAggregationType": "Maximum",
        "Cooldown": 60,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
    }
    alarms = template.find_resources(
        "AWS::CloudWatch::Alarm", {"Properties": {"MetricName": "NoCapacityInvocationFailures"}}
    )
    [wake] = [a["Properties"] for a in alarms.values()]
    assert wake["AlarmActions"] == [{"Ref": step_id}]
    assert wake["Dimensions"] == [{"Name": "InferenceComponentName", "Value": "chat-base-model"}]
    assert (wake["Statistic"], wake["Period"], wake["Threshold"]) == ("Sum", 60, 1)
    assert wake["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert not template.find_resources(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"Properties": {"ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}},
    )


def test_components_on_gpu_count_gpus_and_place_enough_instances() -> None:
    stack = _stack()
    endpoint = _endpoint(
        stack,
        "Gpu",
        **_components(
            instance_type="ml.g5.12xlarge",
            base_model_memory_gib=30.0,
            min_capacity=1,
            max_capacity=5,
            image_uri="example/lmi:1",
        ),
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::SageMaker::InferenceComponent",
        {
            "Specification": Match.object_like(
                {
                    "ComputeResourceRequirements": {
                        "NumberOfAcceleratorDevicesRequired": 2,  # 30 GiB over 24 GiB A10Gs
                        "MinMemoryRequiredInMb": int(192 * 1024 / 2 * 0.8),
                    }
                }
            )
        },
    )
    [config] = template.find_resources("AWS::SageMaker::EndpointConfig").values()
    scaling = config["Properties"]["ProductionVariants"][0]["ManagedInstanceScaling"]
    assert scaling["MaxInstanceCount"] == 3  # 5 copies, 2 per instance
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 1, "MaxCapacity": 5}
    )
    assert endpoint.props.image_framework == "djl-lmi"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"min_capacity": 3, "max_capacity": 2}, "min_capacity: need 1 <= min <= max"),
        ({"instance_type": "g5.2xlarge"}, "ml. form"),
        ({"model_prefix": "models"}, "model_prefix: 'models'"),
        ({"mode": HostingMode.MULTI_MODEL, "model_artifact": "a.tar.gz"}, "single-model"),
        (
            {"mode": HostingMode.MULTI_MODEL, "instance_type": "ml.inf2.xlarge"},
            "multi-model endpoints do not run on ml.inf2.xlarge",
        ),
        ({"routing": Routing.ROUND_ROBIN}, "routing: SageMaker endpoints route by"),
        (
            {"mode": HostingMode.MULTI_MODEL, "instance_type": "ml.trn1.2xlarge"},
            "ml.trn1.2xlarge .*adapters on inference components instead "
            r"\(hosting: inference_components",
        ),
        ({"min_capacity": 0}, "keeps at least one instance; to scale to zero, serve from"),
        ({"accelerators_per_copy": 2}, "accelerators_per_copy: is for inference components"),
        (
            _components(base_model_memory_gib=None),
            "base_model_memory_gib: inference components need a base-model component",
        ),
        (
            _components(instance_type="ml.inf2.xlarge", base_model_memory_gib=150.0),
            r"needs 150.0 GiB of accelerator memory; 2 NeuronCores of ml.inf2.xlarge have 32 "
            r"GiB; use a larger type \(ml.inf2.24xlarge, ml.inf2.48xlarge",
        ),
        (
            _components(accelerators_per_copy=2),
            r"needs 40.0 GiB .* 2 NeuronCores of ml.inf2.24xlarge have 32 GiB; give it 3 "
            "accelerators per copy",
        ),
        (
            _components(accelerators_per_copy=5),
            "accelerators_per_copy: 5 does not split the 12 NeuronCores of ml.inf2.24xlarge",
        ),
        (_components(instance_type="ml.c5.xlarge"), "ml.c5.xlarge has no accelerator figures"),
        (_components(memory_mb_per_copy=10**6), "memory_mb_per_copy: 1000000 MiB"),
        (_components(max_instances=1, max_capacity=6), "max_instances: 1 instances hold 4"),
        (_components(initial_instance_count=2), "initial_instance_count: SageMaker places"),
        (_components(endpoint_name="chat_users"), "endpoint_name: 'chat_users' must be"),
    ],
)
def test_bad_props_fail_at_construction_with_the_field_named(props, message) -> None:
    with pytest.raises(PropsError, match=message) as raised:
        _endpoint(_stack(), "Bad", **props)
    assert str(raised.value).startswith("Serving/Bad: ")


def test_an_image_family_the_sdk_does_not_know() -> None:
    with pytest.raises(ValueError, match=r"Serving/Bad: .*cannot resolve .no-such-framework."):
        _endpoint(_stack(), "Bad", framework="no-such-framework")


def test_image_resolution_needs_a_concrete_region() -> None:
    with pytest.raises(ValueError, match=r"no concrete region.*env=Environment"):
        _endpoint(_stack(env=None), "Agnostic")
    # An explicit image works in a region-agnostic stack.
    _endpoint(_stack(env=None), "Explicit", image_uri="example/image:1")


@pytest.mark.slow
def test_cdk_nag_finds_no_unacknowledged_errors(tmp_path: Path) -> None:
    app = App(context=cdk_feature_flags(), outdir=str(tmp_path))
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    stack = _stack(app)
    _endpoint(stack, "Users", mode=HostingMode.MULTI_MODEL)
    _endpoint(stack, "Codegen", image_uri="example/image:1")
    _endpoint(stack, "Adapters", **_components())
    # A control: a bare bucket in another stack must be reported, or the check checks nothing.
    s3.Bucket(Stack(app, "Control", env=REGION), "Bare")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    erring_paths = {
        construct.get("constructPath", "")
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        if violation.get("severity", "error") == "error"
        for construct in violation["violatingConstructs"]
    }
    assert erring_paths, "the control bucket was not reported: cdk-nag did not run"
    assert {path.split("/")[0] for path in erring_paths} == {"Control"}
