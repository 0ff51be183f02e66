"""One CloudFormation stack per region, built from the fleet spec.

Emulator mode (``emulator=True``; the ``inferfleet:emulator`` context key, set by
``inferfleet deploy --endpoint-url``) leaves out exactly what moto's CloudFormation
cannot run, and nothing else:

- the Lambda-backed custom resource that strips the rules of the VPC's default
  security group (``@aws-cdk/aws-ec2:restrictDefaultSecurityGroup``), with its
  provider function and role: the emulator runs no Lambda code, so the stack would
  wait for the resource forever;
- the tags on the alarm topic's KMS key: moto fails creating a tagged key from a
  template;
- what reads a target group's ``TargetGroupFullName`` attribute, which moto cannot
  resolve: each service's three CloudWatch alarms, its request-count scaling
  policies, and the cluster's dashboard;
- the ``personalization`` section (SageMaker multi-model endpoint and fine-tune
  queue): moto knows no ``ml.*`` instance types for endpoints, and the queue's
  upload trigger is a Lambda-backed custom resource (S3 bucket notifications).
  The fine-tune handlers are exercised against moto in their own tests.
"""

from aws_cdk import CfnOutput, Duration, Environment, Stack, Tags
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from inferfleet.constructs.finetune_queue import FinetuneQueue
from inferfleet.constructs.neuron_model_service import NeuronModelService, NeuronPool
from inferfleet.constructs.neuron_serving_cluster import NeuronServingCluster
from inferfleet.constructs.sagemaker_endpoint import HostingMode, RoutingStrategy, SageMakerEndpoint
from inferfleet.infra import capacity
from inferfleet.infra.naming import output_key, regional_stack_name
from inferfleet.infra.spec import (
    FleetSpec,
    PersonalizationSpec,
    RegionSpec,
    ServiceSpec,
    VpcSpec,
    grace_period_s,
)

_Algorithm = elbv2.TargetGroupLoadBalancingAlgorithmType
ROUTING = {
    "least_outstanding_requests": _Algorithm.LEAST_OUTSTANDING_REQUESTS,
    "round_robin": _Algorithm.ROUND_ROBIN,
    "weighted_random": _Algorithm.WEIGHTED_RANDOM,
}
SAGEMAKER_ROUTING = {
    "least_outstanding_requests": RoutingStrategy.LEAST_OUTSTANDING_REQUESTS,
    "random": RoutingStrategy.RANDOM,
}
# Compute dtype of the serving engine; int8 is weight-only, activations stay bf16.
CONTAINER_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "int8": "bfloat16"}
RESTRICT_DEFAULT_SECURITY_GROUP = "@aws-cdk/aws-ec2:restrictDefaultSecurityGroup"


class RegionalStack(Stack):
    """Serving cluster and model services of one region of a fleet."""

    def __init__(
        self,
        scope: Construct,
        spec: FleetSpec,
        region: RegionSpec,
        *,
        config_dir: str = ".",
        emulator: bool = False,
    ) -> None:
        super().__init__(
            scope,
            regional_stack_name(spec.name, region.name),
            env=Environment(account=spec.account_of(region), region=region.name),
            description=f"inferfleet {spec.name}: model serving in {region.name}",
        )
        self.spec = spec
        self.region_spec = region
        if emulator:
            self.node.set_context(RESTRICT_DEFAULT_SECURITY_GROUP, False)
        untagged = ["AWS::KMS::Key"] if emulator else None
        for key, value in {"inferfleet:fleet": spec.name, **spec.tags}.items():
            Tags.of(self).add(key, value, exclude_resource_types=untagged)

        self.serving_cluster = NeuronServingCluster(
            self,
            "Serving",
            vpc=self._imported_vpc(region.vpc) if region.vpc else None,
            vpc_cidr=region.vpc.cidr if region.vpc else None,
            max_azs=len(region.availability_zones) if region.availability_zones else 3,
            nat_gateways=None if region.vpc else spec.network.nat_gateways,
            alarm_emails=spec.alarm_emails,
        )
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", region.certificate_arn)
            if region.certificate_arn
            else None
        )
        self.services: dict[str, NeuronModelService] = {}
        for name, service in spec.services.items():
            model_service = self._model_service(name, service, certificate, config_dir)
            self.services[name] = model_service
            CfnOutput(self, output_key(name, "Endpoint"), value=model_service.endpoint_url)
            CfnOutput(
                self,
                output_key(name, "TargetGroupArn"),
                value=model_service.target_group.target_group_arn,
            )
        CfnOutput(self, "ClusterName", value=self.serving_cluster.cluster.cluster_name)
        self.personalization: tuple[SageMakerEndpoint, FinetuneQueue] | None = None
        if spec.personalization and spec.personalized(region.name) and not emulator:
            self.personalization = self._personalization(spec.personalization)
        if emulator:
            self._leave_out_target_group_name_readers()

    def _personalization(
        self, section: PersonalizationSpec
    ) -> tuple[SageMakerEndpoint, FinetuneQueue]:
        endpoint_spec, queue_spec = section.endpoint, section.queue
        topic = self.serving_cluster.alarm_topic
        logs = self.serving_cluster.access_log_bucket
        endpoint = SageMakerEndpoint(
            self,
            "Personalization",
            mode=HostingMode.MULTI_MODEL,
            instance_type=endpoint_spec.instance_type,
            min_capacity=endpoint_spec.min,
            max_capacity=endpoint_spec.max,
            target_invocations_per_instance=endpoint_spec.invocations_per_instance,
            routing_strategy=SAGEMAKER_ROUTING[endpoint_spec.routing],
            image_uri=endpoint_spec.image_uri,
            access_logs_bucket=logs,
            alarm_topic=topic,
        )
        queue = FinetuneQueue(
            self,
            "Finetune",
            model_bucket=endpoint.model_bucket,
            model_prefix=endpoint.model_prefix,
            training_image_uri=queue_spec.training_image_uri,
            training_instance_type=queue_spec.training_instance_type,
            training_job_prefix=f"{self.spec.name}-ft"[:40],
            max_running_jobs=queue_spec.max_running_jobs,
            create_calls_per_second=queue_spec.create_calls_per_second,
            max_attempts=queue_spec.max_attempts,
            batch_threshold=queue_spec.batch_threshold,
            batch_tasks=queue_spec.batch_tasks,
            batch_instances=queue_spec.batch_instances,
            access_logs_bucket=logs,
            alarm_topic=topic,
        )
        return endpoint, queue

    def _leave_out_target_group_name_readers(self) -> None:
        readers: list[Construct] = [self.serving_cluster.dashboard]
        for model_service in self.services.values():
            readers.extend(model_service.alarms.values())
        readers.extend(
            node
            for node in self.node.find_all()
            if isinstance(node, appscaling.TargetTrackingScalingPolicy)
        )
        for reader in readers:
            reader.node.scope.node.try_remove_child(reader.node.id)

    def _model_service(
        self,
        name: str,
        service: ServiceSpec,
        certificate: acm.ICertificate | None,
        config_dir: str,
    ) -> NeuronModelService:
        container = service.container
        image = None
        if container.image:
            image = ecs.ContainerImage.from_registry(container.image)
        elif container.asset_path:
            image = ecs.ContainerImage.from_asset(f"{config_dir}/{container.asset_path}")
        model = service.model
        health = service.health_check
        return NeuronModelService(
            self,
            name,
            serving_cluster=self.serving_cluster,
            kind=service.kind,
            pools=[
                NeuronPool(
                    instance_type=pool.instance_type,
                    tensor_parallel=pool.tensor_parallel,
                    min_capacity=pool.min,
                    max_capacity=pool.max,
                )
                for pool in self.spec.pools_in(service, self.region_spec.name)
            ],
            image=image,
            container_port=container.port,
            environment={
                "INFERFLEET_MAX_SEQ_LEN": str(model.max_sequence_length),
                "INFERFLEET_MAX_NUM_SEQS": str(model.max_batch_size),
                "INFERFLEET_QUANTIZATION": "int8" if model.weights_dtype == "int8" else "none",
                "INFERFLEET_DTYPE": CONTAINER_DTYPES[model.weights_dtype],
                **container.environment,
            },
            model_artifact=model.artifact,
            weights_gib=capacity.weights_gib(model.parameters_b, model.weights_dtype),
            routing=ROUTING[service.routing],
            idle_timeout=_seconds(service.stream_idle_timeout_s),
            deregistration_delay=_seconds(service.deregistration_delay_s),
            health_check=elbv2.HealthCheck(
                path=health.path,
                interval=Duration.seconds(health.interval_s),
                timeout=Duration.seconds(health.timeout_s),
                healthy_threshold_count=health.healthy_threshold,
                unhealthy_threshold_count=health.unhealthy_threshold,
                healthy_http_codes="200",
            ),
            health_check_grace_period=Duration.seconds(grace_period_s(service)),
            requests_per_target_per_minute=service.autoscaling.requests_per_target_per_minute,
            scale_in_cooldown=Duration.seconds(service.autoscaling.scale_in_cooldown_s),
            scale_out_cooldown=Duration.seconds(service.autoscaling.scale_out_cooldown_s),
            certificate=certificate,
            internet_facing=self.spec.network.internet_facing,
            allowed_cidrs=self.spec.network.allowed_cidrs or None,
        )

    def _imported_vpc(self, vpc: VpcSpec) -> ec2.IVpc:
        return ec2.Vpc.from_vpc_attributes(
            self,
            "Vpc",
            vpc_id=vpc.vpc_id,
            vpc_cidr_block=vpc.cidr,
            availability_zones=vpc.availability_zones,
            private_subnet_ids=vpc.private_subnet_ids,
            public_subnet_ids=vpc.public_subnet_ids or None,
        )


def _seconds(value: int | None) -> Duration | None:
    return None if value is None else Duration.seconds(value)
