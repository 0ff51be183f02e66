"""A SageMaker real-time endpoint: one model, or many per-user models behind one endpoint (MME).

The container image is resolved at synth time, for the stack's region, from the SageMaker
SDK's image-URI tables (``sagemaker.core.image_uris``), unless an image URI is given.
Defaults are the production choice: least-outstanding-requests routing, target-tracking
autoscaling on invocations per instance, network isolation, a versioned, encrypted, SSL-only
model bucket, a role that can read only the model prefix, and alarms.
"""

from __future__ import annotations

import re
from enum import StrEnum

from aws_cdk import Aws, CfnOutput, Duration, Stack, Token
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from inferfleet.constructs.nag import acknowledge, nag_resource
from inferfleet.constructs.private_bucket import private_bucket

# CloudFormation output names the CLI reads from the deployed stack.
ENDPOINT_NAME_OUTPUT = "SageMakerEndpointName"
MODEL_BUCKET_OUTPUT = "SageMakerModelBucket"
MODEL_PREFIX_OUTPUT = "SageMakerModelPrefix"

VARIANT_NAME = "AllTraffic"
DEFAULT_FRAMEWORK = "sagemaker-tritonserver"
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[^:@]+)"
)


class HostingMode(StrEnum):
    SINGLE_MODEL = "SingleModel"
    MULTI_MODEL = "MultiModel"


class RoutingStrategy(StrEnum):
    LEAST_OUTSTANDING_REQUESTS = "LEAST_OUTSTANDING_REQUESTS"
    RANDOM = "RANDOM"


def resolve_image_uri(
    framework: str, region: str, *, instance_type: str, version: str | None = None
) -> str:
    """The SageMaker SDK's image URI of ``framework`` in ``region`` (synth time, offline)."""
    try:
        from sagemaker.core import image_uris
    except ImportError as error:
        raise ValueError(
            f"image: resolving {framework!r} needs the SageMaker SDK tables "
            "(pip install 'sagemaker-core>=2'); or give image_uri explicitly"
        ) from error
    try:
        return image_uris.retrieve(
            framework, region=region, version=version, instance_type=instance_type
        )
    except FileNotFoundError:
        raise ValueError(
            f"image: cannot resolve {framework!r}: the SageMaker SDK has no such image family "
            "(e.g. sagemaker-tritonserver, djl-neuronx, huggingface-llm-neuronx)"
        ) from None
    except ValueError as error:
        raise ValueError(f"image: cannot resolve {framework!r} in {region}: {error}") from None


class SageMakerEndpoint(Construct):
    """A real-time endpoint with its model bucket, execution role, autoscaling and alarms.

    :param mode: ``HostingMode.SINGLE_MODEL`` or ``HostingMode.MULTI_MODEL`` (one endpoint
        loading ``{model_prefix}{TargetModel}`` on demand). Default: single model.
    :param instance_type: production variant instance type. Default: ``ml.g5.2xlarge``.
    :param initial_instance_count: instances at creation. Default: ``min_capacity``.
    :param min_capacity: autoscaling floor. Default: 1.
    :param max_capacity: autoscaling ceiling. Default: 4.
    :param target_invocations_per_instance: target tracking on
        ``SageMakerVariantInvocationsPerInstance`` (per minute). Default: 100.
    :param routing_strategy: how SageMaker picks an instance. Default: least outstanding
        requests.
    :param image_uri: container image. Default: resolved from the SDK tables for
        ``framework``/``framework_version`` in the stack's region (which must be concrete).
    :param framework: SDK image family. Default: ``sagemaker-tritonserver`` (Triton MME).
    :param framework_version: version in the SDK tables. Default: the newest there.
    :param model_prefix: key prefix of the model artifacts in the bucket. Default:
        ``models/``.
    :param model_artifact: single-model mode: the artifact's key under ``model_prefix``
        (e.g. ``model.tar.gz``). Default: none (the image carries the model).
    :param environment: container environment. Default: none.
    :param model_bucket: an existing bucket for the artifacts. Default: a new bucket,
        versioned, encrypted, SSL-only, with public access blocked, retained on delete.
    :param access_logs_bucket: where the new model bucket logs access. Default: none.
    :param network_isolation: run the container without network access. Default: True.
    :param latency_p99_threshold: ``ModelLatency`` P99 alarm threshold. Default: 1 s.
    :param error_5xx_threshold: 5xx errors per 5 minutes that alarm. Default: 1.
    :param cache_hit_rate_threshold: MME: alarm when ``ModelCacheHit`` falls below. Default 0.5.
    :param loaded_models_threshold: MME: alarm when ``LoadedModelCount`` reaches it (instances
        are evicting models). Default: 1000.
    :param alarm_topic: SNS topic the alarms notify. Default: none.
    :param emit_outputs: add the CfnOutputs the CLI reads. Default: True.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        mode: HostingMode = HostingMode.SINGLE_MODEL,
        instance_type: str = "ml.g5.2xlarge",
        initial_instance_count: int | None = None,
        min_capacity: int = 1,
        max_capacity: int = 4,
        target_invocations_per_instance: int = 100,
        routing_strategy: RoutingStrategy = RoutingStrategy.LEAST_OUTSTANDING_REQUESTS,
        image_uri: str | None = None,
        framework: str = DEFAULT_FRAMEWORK,
        framework_version: str | None = None,
        model_prefix: str = "models/",
        model_artifact: str | None = None,
        environment: dict[str, str] | None = None,
        model_bucket: s3.IBucket | None = None,
        access_logs_bucket: s3.IBucket | None = None,
        network_isolation: bool = True,
        latency_p99_threshold: Duration | None = None,
        error_5xx_threshold: int = 1,
        cache_hit_rate_threshold: float = 0.5,
        loaded_models_threshold: int = 1000,
        alarm_topic: sns.ITopic | None = None,
        emit_outputs: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        mode = HostingMode(mode)
        routing_strategy = RoutingStrategy(routing_strategy)
        initial_instance_count = (
            min_capacity if initial_instance_count is None else initial_instance_count
        )
        _validate(
            construct_id,
            mode=mode,
            instance_type=instance_type,
            min_capacity=min_capacity,
            max_capacity=max_capacity,
            initial_instance_count=initial_instance_count,
            model_prefix=model_prefix,
            model_artifact=model_artifact,
            cache_hit_rate_threshold=cache_hit_rate_threshold,
        )
        self.mode = mode
        self.model_prefix = model_prefix
        self.image_uri = image_uri or self._resolve_image(
            construct_id, framework, framework_version, instance_type
        )

        self.model_bucket: s3.IBucket = model_bucket or self._new_bucket(access_logs_bucket)
        self.role = self._execution_role()

        if mode is HostingMode.MULTI_MODEL:
            self.model_data_url: str | None = self.model_bucket.s3_url_for_object(model_prefix)
        elif model_artifact:
            self.model_data_url = self.model_bucket.s3_url_for_object(
                f"{model_prefix}{model_artifact}"
            )
        else:
            self.model_data_url = None

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=network_isolation,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image_uri,
                mode=mode.value,
                model_data_url=self.model_data_url,
                environment=environment,
            ),
        )
        self.model.node.add_dependency(self.role)
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=self.model.attr_model_name,
                    instance_type=instance_type,
                    initial_instance_count=initial_instance_count,
                    initial_variant_weight=1.0,
                    routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                        routing_strategy=routing_strategy.value
                    ),
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
        self.endpoint_name: str = self.endpoint.attr_endpoint_name

        self.scalable_target = autoscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT_NAME}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=min_capacity,
            max_capacity=max_capacity,
        )
        self.scalable_target.node.add_dependency(self.endpoint)
        self.scalable_target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=target_invocations_per_instance,
            predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

        self.alarms = self._alarms(
            latency_p99_threshold or Duration.seconds(1),
            error_5xx_threshold,
            cache_hit_rate_threshold,
            loaded_models_threshold,
        )
        if alarm_topic is not None:
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))

        self._acknowledge(network_isolation)
        if emit_outputs:
            CfnOutput(self, ENDPOINT_NAME_OUTPUT, value=self.endpoint_name).override_logical_id(
                ENDPOINT_NAME_OUTPUT
            )
            CfnOutput(
                self, MODEL_BUCKET_OUTPUT, value=self.model_bucket.bucket_name
            ).override_logical_id(MODEL_BUCKET_OUTPUT)
            CfnOutput(self, MODEL_PREFIX_OUTPUT, value=model_prefix).override_logical_id(
                MODEL_PREFIX_OUTPUT
            )

    # -- parts -------------------------------------------------------------------------------

    def _resolve_image(
        self, construct_id: str, framework: str, version: str | None, instance_type: str
    ) -> str:
        region = Stack.of(self).region
        if Token.is_unresolved(region):
            raise ValueError(
                f"{construct_id}: image_uri is resolved at synth time for the stack's region, "
                "but this stack has no concrete region; give the stack "
                "env=Environment(region=...) or pass image_uri"
            )
        try:
            return resolve_image_uri(
                framework, region, instance_type=instance_type, version=version
            )
        except ValueError as error:
            raise ValueError(f"{construct_id}: {error}") from None

    def _new_bucket(self, access_logs_bucket: s3.IBucket | None) -> s3.Bucket:
        return private_bucket(
            self,
            "ModelBucket",
            access_logs_bucket=access_logs_bucket,
            access_logs_prefix="model-bucket/",
        )

    def _execution_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker endpoint: reads its model prefix, pulls its image, logs",
        )
        bucket_arn = self.model_bucket.bucket_arn
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[f"{bucket_arn}/{self.model_prefix}*"]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{self.model_prefix}*"]}},
            )
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{nag_resource(role, bucket_arn)}/{self.model_prefix}*]",
            "the endpoint loads any model under its prefix (MME TargetModel); nothing else",
        )
        stack = Stack.of(self)
        image = (
            _ECR_IMAGE.match(self.image_uri) if not Token.is_unresolved(self.image_uri) else None
        )
        repository_arn = (
            f"arn:{stack.partition}:ecr:{image['region']}:{image['account']}:repository/"
            f"{image['repository']}"
            if image
            else f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{Aws.ACCOUNT_ID}:repository/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[repository_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; cloudwatch:"
            "PutMetricData is limited to the AWS/SageMaker namespace by condition",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "AWS/SageMaker"}},
            )
        )
        # Pseudo parameters rather than the stack's values: the ARN reads the same in findings.
        log_groups = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            "log-group:/aws/sagemaker/Endpoints/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[log_groups, f"{log_groups}:*"],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*]",
            "SageMaker names the endpoint's log group after the endpoint at creation",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws/sagemaker/Endpoints/*:*]",
            "log streams are per instance and created by SageMaker",
        )
        if not image:
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:"
                "<AWS::AccountId>:repository/*]",
                "the image is only known at deploy time; pulls stay in this account",
            )
        return role

    def _metric(self, name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": VARIANT_NAME},
            statistic=statistic,
            period=period,
        )

    def _alarms(
        self,
        latency_p99: Duration,
        errors_5xx: int,
        cache_hit_rate: float,
        loaded_models: int,
    ) -> dict[str, cloudwatch.Alarm]:
        minute = Duration.minutes(1)
        alarms = {
            "ModelLatencyP99": cloudwatch.Alarm(
                self,
                "ModelLatencyP99Alarm",
                alarm_description="Model latency P99 above its threshold (microseconds)",
                metric=self._metric("ModelLatency", "p99", minute),
                threshold=latency_p99.to_milliseconds() * 1000,
                evaluation_periods=5,
                datapoints_to_alarm=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "Invocation5XXErrors": cloudwatch.Alarm(
                self,
                "Invocation5XXErrorsAlarm",
                alarm_description="The model container answered with 5xx errors",
                metric=self._metric("Invocation5XXErrors", "Sum", Duration.minutes(5)),
                threshold=errors_5xx,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        if self.mode is HostingMode.MULTI_MODEL:
            alarms["ModelCacheHit"] = cloudwatch.Alarm(
                self,
                "ModelCacheHitAlarm",
                alarm_description="Too many requests load their model from S3 (cold models)",
                metric=self._metric("ModelCacheHit", "Average", Duration.minutes(5)),
                threshold=cache_hit_rate,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarms["LoadedModelCount"] = cloudwatch.Alarm(
                self,
                "LoadedModelCountAlarm",
                alarm_description="Instances hold so many models that they evict (add memory)",
                metric=self._metric("LoadedModelCount", "Maximum", Duration.minutes(5)),
                threshold=loaded_models,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        return alarms

    def _acknowledge(self, network_isolation: bool) -> None:
        acknowledge(
            self.model,
            "AwsSolutions-SM1",
            "the endpoint is reached through the SageMaker runtime API; the container runs "
            "with network isolation and needs no VPC resources",
        )
        acknowledge(
            self.endpoint_config,
            "AwsSolutions-SM2",
            "GPU and Inferentia instances keep the model on NVMe instance storage, which "
            "SageMaker encrypts and which rejects a KmsKeyId",
        )
        if not network_isolation:
            acknowledge(
                self.model,
                "AwsSolutions-SM3",
                "network isolation turned off by the caller (network_isolation=False)",
            )


def _validate(
    construct_id: str,
    *,
    mode: HostingMode,
    instance_type: str,
    min_capacity: int,
    max_capacity: int,
    initial_instance_count: int,
    model_prefix: str,
    model_artifact: str | None,
    cache_hit_rate_threshold: float,
) -> None:
    if not instance_type.startswith("ml."):
        raise ValueError(
            f"{construct_id}: instance_type {instance_type!r} is not a SageMaker instance type; "
            "use the ml. form, e.g. ml.g5.2xlarge or ml.inf2.xlarge"
        )
    if not 1 <= min_capacity <= max_capacity:
        raise ValueError(
            f"{construct_id}: need 1 <= min_capacity <= max_capacity, got "
            f"{min_capacity}..{max_capacity}; a real-time endpoint keeps at least one instance"
        )
    if not min_capacity <= initial_instance_count <= max_capacity:
        raise ValueError(
            f"{construct_id}: initial_instance_count {initial_instance_count} must lie within "
            f"min_capacity..max_capacity ({min_capacity}..{max_capacity})"
        )
    if (model_prefix and not model_prefix.endswith("/")) or model_prefix.startswith("/"):
        raise ValueError(
            f"{construct_id}: model_prefix {model_prefix!r} must be a key prefix like 'models/' "
            "(no leading '/', ending in '/')"
        )
    if mode is HostingMode.MULTI_MODEL and model_artifact:
        raise ValueError(
            f"{construct_id}: model_artifact is for single-model endpoints; a multi-model "
            "endpoint loads every artifact under model_prefix by TargetModel"
        )
    if not 0 < cache_hit_rate_threshold <= 1:
        raise ValueError(
            f"{construct_id}: cache_hit_rate_threshold must be in (0, 1], "
            f"got {cache_hit_rate_threshold}"
        )
