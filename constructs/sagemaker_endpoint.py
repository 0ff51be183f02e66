"""A SageMaker real-time endpoint: one model, many per-user models behind one endpoint (MME), or
a base model as an inference component that per-user adapter components attach to.

With inference components the endpoint config has no model (the execution role sits on the
config), SageMaker places instances for the copies (``ManagedInstanceScaling`` from 0), and
the base component's copies scale between ``min_capacity`` (0 by default) and
``max_capacity``: target tracking on concurrent requests per copy, plus the step policy and
``NoCapacityInvocationFailures`` alarm AWS documents for coming back from zero.

The container image is resolved at synth time, for the stack's region, from the SageMaker
SDK's image-URI tables (``sagemaker.core.image_uris``), unless an image URI is given.
Defaults are the production choice: least-outstanding-requests routing, target-tracking
autoscaling on invocations per instance, network isolation, a versioned, encrypted, SSL-only
model bucket, a role that can read only the model prefix, and alarms.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Fn, Stack, Token
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from inferfleet.constructs.container_images import ecr_repository_arn
from inferfleet.constructs.nag import acknowledge, acknowledged_policy, nag_resource
from inferfleet.constructs.private_bucket import private_bucket
from inferfleet.constructs.props.problems import PropsProblem, raise_for
from inferfleet.constructs.props.sagemaker_endpoint import (
    HostingMode,
    SageMakerEndpointProps,
)

__all__ = ["HostingMode", "SageMakerEndpoint", "SageMakerEndpointProps", "resolve_image_uri"]

VARIANT_NAME = "AllTraffic"


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

    :param props: the endpoint (:class:`SageMakerEndpointProps`, defaults documented there).
    :param model_bucket: an existing bucket for the artifacts. Default: a new bucket,
        versioned, encrypted, SSL-only, with public access blocked, retained on delete.
    :param access_logs_bucket: where the new model bucket logs access. Default: none.
    :param alarm_topic: SNS topic the alarms notify. Default: none.
    :param volume_key: KMS key of the instances' storage volumes. Default: a new key (rotated)
        for instance types with EBS volumes; none for types with NVMe instance storage
        (``ml.g5``, ``ml.trn1``, ``ml.*d``), which SageMaker encrypts itself and where a key is
        refused.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: SageMakerEndpointProps | None = None,
        model_bucket: s3.IBucket | None = None,
        access_logs_bucket: s3.IBucket | None = None,
        alarm_topic: sns.ITopic | None = None,
        volume_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        props = props or SageMakerEndpointProps()
        problems = props.problems()
        if volume_key is not None and props.has_instance_storage:
            problems.append(
                PropsProblem(
                    "volume_key",
                    f"{props.instance_type} keeps models on NVMe instance storage, which "
                    "SageMaker encrypts itself and where it refuses a KMS key; leave it out",
                )
            )
        raise_for(self.node.path, problems)
        self.props = props
        self.mode = props.mode
        self.model_prefix = props.model_prefix
        self.image_uri = props.image_uri or self._resolve_image(
            props.image_framework, props.framework_version, props.instance_type
        )

        self.model_bucket: s3.IBucket = model_bucket or self._new_bucket(access_logs_bucket)
        self.role = self._execution_role()

        if props.mode is HostingMode.MULTI_MODEL:
            self.model_data_url: str | None = self.model_bucket.s3_url_for_object(
                props.model_prefix
            )
        elif props.model_artifact:
            self.model_data_url = self.model_bucket.s3_url_for_object(
                f"{props.model_prefix}{props.model_artifact}"
            )
        else:
            self.model_data_url = None

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            enable_network_isolation=props.network_isolation,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=self.image_uri,
                mode=props.mode.container_mode,
                model_data_url=self.model_data_url,
                environment=props.container_environment or None,
            ),
        )
        self.model.node.add_dependency(self.role)
        self.volume_key: kms.IKey | None = (
            None
            if props.has_instance_storage
            else volume_key
            or kms.Key(
                self,
                "VolumeKey",
                description="Encrypts the endpoint instances' storage volumes",
                enable_key_rotation=True,
            )
        )
        self.endpoint_config = self._endpoint_config()
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=props.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        self.endpoint_name: str = self.endpoint.attr_endpoint_name
        # Inference components: the base model the adapters attach to, and its copies.
        self.base_component: sagemaker.CfnInferenceComponent | None = None
        self.base_component_name: str | None = None
        self.scale_from_zero_alarm: cloudwatch.Alarm | None = None
        if props.components:
            self.base_component = self._base_component()
            self.base_component_name = props.base_component_name or Fn.select(
                1, Fn.split("/", self.base_component.attr_inference_component_arn)
            )
            self.scalable_target = self._copy_scaling(self.base_component_name)
        else:
            self.scalable_target = self._instance_scaling()

        self.alarms = self._alarms()
        if alarm_topic is not None:
            for alarm in self.alarms.values():
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))

    # -- parts -------------------------------------------------------------------------------

    def _resolve_image(self, framework: str, version: str | None, instance_type: str) -> str:
        region = Stack.of(self).region
        if Token.is_unresolved(region):
            raise ValueError(
                f"{self.node.path}: image_uri is resolved at synth time for the stack's region, "
                "but this stack has no concrete region; give the stack "
                "env=Environment(region=...) or pass image_uri"
            )
        try:
            return resolve_image_uri(
                framework, region, instance_type=instance_type, version=version
            )
        except ValueError as error:
            raise ValueError(f"{self.node.path}: {error}") from None

    def _endpoint_config(self) -> sagemaker.CfnEndpointConfig:
        props = self.props
        variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty
        routing = sagemaker.CfnEndpointConfig.RoutingConfigProperty(
            routing_strategy=props.routing.sagemaker
        )
        kms_key_id = self.volume_key.key_arn if self.volume_key else None
        if not props.components:
            return sagemaker.CfnEndpointConfig(
                self,
                "EndpointConfig",
                kms_key_id=kms_key_id,
                production_variants=[
                    variant(
                        variant_name=VARIANT_NAME,
                        model_name=self.model.attr_model_name,
                        instance_type=props.instance_type,
                        initial_instance_count=props.initial_count,
                        initial_variant_weight=1.0,
                        routing_config=routing,
                    )
                ],
            )
        # No model on the variant: the components bring theirs, and the role moves here.
        config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            kms_key_id=kms_key_id,
            execution_role_arn=self.role.role_arn,
            production_variants=[
                variant(
                    variant_name=VARIANT_NAME,
                    instance_type=props.instance_type,
                    initial_instance_count=props.initial_count,
                    routing_config=routing,
                    managed_instance_scaling=(
                        sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                            status="ENABLED",
                            min_instance_count=0,
                            max_instance_count=props.instance_ceiling,
                        )
                    ),
                )
            ],
        )
        config.node.add_dependency(self.role)
        return config

    def _base_component(self) -> sagemaker.CfnInferenceComponent:
        props = self.props
        component = sagemaker.CfnInferenceComponent
        return component(
            self,
            "BaseComponent",
            endpoint_name=self.endpoint_name,
            inference_component_name=props.base_component_name,
            variant_name=VARIANT_NAME,
            specification=component.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name,
                compute_resource_requirements=(
                    component.InferenceComponentComputeResourceRequirementsProperty(
                        number_of_accelerator_devices_required=props.copy_accelerators,
                        min_memory_required_in_mb=props.copy_memory_mb,
                    )
                ),
            ),
            runtime_config=component.InferenceComponentRuntimeConfigProperty(
                copy_count=props.initial_copies
            ),
        )

    def _instance_scaling(self) -> autoscaling.ScalableTarget:
        props = self.props
        target = autoscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT_NAME}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=props.floor,
            max_capacity=props.max_capacity,
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=props.target_invocations_per_instance,
            predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
        return target

    def _copy_scaling(self, component_name: str) -> autoscaling.ScalableTarget:
        """Copies between min and max, down to zero; AWS's pattern brings them back: target
        tracking cannot leave zero copies (nothing to divide by), so SageMaker's
        ``NoCapacityInvocationFailures`` alarms into a step policy that adds a copy."""
        props = self.props
        target = autoscaling.ScalableTarget(
            self,
            "ScalableTarget",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{component_name}",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=props.floor,
            max_capacity=props.max_capacity,
        )
        target.node.add_dependency(self.base_component)  # type: ignore[arg-type]
        target.scale_to_track_metric(
            "ConcurrentRequestsPerCopy",
            target_value=props.target_concurrent_requests_per_copy,
            predefined_metric=(
                autoscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_CONCURRENT_REQUESTS_PER_COPY_HIGH_RESOLUTION
            ),
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
        scale_from_zero = autoscaling.StepScalingAction(
            self,
            "ScaleFromZero",
            scaling_target=target,
            adjustment_type=autoscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            metric_aggregation_type=autoscaling.MetricAggregationType.MAXIMUM,
            cooldown=Duration.minutes(1),
        )
        scale_from_zero.add_adjustment(adjustment=1, lower_bound=0)
        self.scale_from_zero_alarm = cloudwatch.Alarm(
            self,
            "ScaleFromZeroAlarm",
            alarm_description="A request found no copy of the base model: add one",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="NoCapacityInvocationFailures",
                dimensions_map={"InferenceComponentName": component_name},
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            # One failed request wakes the base model (AWS's example waits for a second).
            threshold=1,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.scale_from_zero_alarm.add_alarm_action(
            cloudwatch_actions.ApplicationScalingAction(scale_from_zero)
        )
        return target

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
            "the endpoint loads any model under its prefix (an MME TargetModel, or an adapter "
            "component's artifact); nothing else",
        )
        stack = Stack.of(self)
        repository_arn = ecr_repository_arn(self.image_uri, stack.partition)
        image = repository_arn is not None
        repository_arn = (
            repository_arn or f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{Aws.ACCOUNT_ID}:repository/*"
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[repository_arn],
            )
        )
        acknowledged_policy(
            role,
            "UnscopedActions",
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "ecr:GetAuthorizationToken has no resource types; cloudwatch:PutMetricData "
                    "is limited to the AWS/SageMaker namespace by condition"
                )
            },
            [
                iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": "AWS/SageMaker"}},
                ),
            ],
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
        dimensions = (
            {"InferenceComponentName": self.base_component_name}
            if self.base_component_name
            else {"EndpointName": self.endpoint_name, "VariantName": VARIANT_NAME}
        )
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
        )

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        props = self.props
        minute = Duration.minutes(1)
        alarms = {
            "ModelLatencyP99": cloudwatch.Alarm(
                self,
                "ModelLatencyP99Alarm",
                alarm_description="Model latency P99 above its threshold (microseconds)",
                metric=self._metric("ModelLatency", "p99", minute),
                threshold=props.latency_p99_threshold_ms * 1000,
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
                threshold=props.error_5xx_threshold,
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
                threshold=props.cache_hit_rate_threshold,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarms["LoadedModelCount"] = cloudwatch.Alarm(
                self,
                "LoadedModelCountAlarm",
                alarm_description="Instances hold so many models that they evict (add memory)",
                metric=self._metric("LoadedModelCount", "Maximum", Duration.minutes(5)),
                threshold=props.loaded_models_threshold,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        return alarms
