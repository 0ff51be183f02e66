"""One model served by ECS tasks on Neuron instances behind its own load balancer."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from aws_cdk import Duration, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from inferfleet.constructs.container_images import BuiltInImage, image_asset_options
from inferfleet.constructs.nag import acknowledge, nag_resource
from inferfleet.constructs.neuron_capacity_pool import NeuronCapacityPool
from inferfleet.constructs.neuron_instances import neuron_instance_type
from inferfleet.constructs.neuron_serving_cluster import NeuronServingCluster

ServiceKind = Literal["llm", "classifier"]
Routing = elbv2.TargetGroupLoadBalancingAlgorithmType

BUILT_IN_IMAGES: dict[ServiceKind, BuiltInImage] = {
    "llm": "llm-neuron",
    "classifier": "intent-neuron",
}
# Sized for a token stream (an idle stream is cut) vs. a millisecond classifier.
_DEFAULT_IDLE_TIMEOUT = {"llm": Duration.seconds(600), "classifier": Duration.seconds(60)}
_DEFAULT_DEREGISTRATION_DELAY = {"llm": Duration.seconds(300), "classifier": Duration.seconds(30)}
# ALB TargetResponseTime ends at the first response byte: time to first token for streams.
_DEFAULT_P99_ALARM = {"llm": Duration.seconds(1), "classifier": Duration.millis(10)}
_DEFAULT_REQUESTS_PER_TARGET_PER_MINUTE = {"llm": 120, "classifier": 60000}


@dataclass(frozen=True)
class NeuronPool:
    """Instances of one type serving the model; pools of a service differ only in TP degree.

    :param instance_type: an inf2/trn1/trn2 type (see ``neuron_instances``).
    :param tensor_parallel: NeuronCores per model replica; must divide the instance's cores.
    :param min_capacity: instances (one task each) kept serving.
    :param max_capacity: upper bound of instances.
    """

    instance_type: str
    tensor_parallel: int
    min_capacity: int = 1
    max_capacity: int = 2


def built_in_image(kind: ServiceKind) -> ecs.ContainerImage:
    """The image this package ships a build context for; built by ``cdk deploy``."""
    options = image_asset_options(BUILT_IN_IMAGES[kind])
    return ecs.ContainerImage.from_asset(options.pop("directory"), **options)


class NeuronModelService(Construct):
    """A model on one or more pools of Neuron instances, behind one load balancer.

    Every pool gets a capacity provider, a task definition that maps exactly its
    instance type's ``/dev/neuronN`` devices, and an ECS service (one task per
    instance, circuit breaker with rollback). All pools register in one target
    group that routes by least outstanding requests by default, so one load
    balancer spreads requests over inf2 and trn1 instances alike.

    :param serving_cluster: cluster, network, buckets and alarm topic to use.
    :param pools: one or more :class:`NeuronPool`, at most one per instance type.
    :param kind: ``llm`` (token streams) or ``classifier``; picks the built-in image
        and the defaults of timeouts, alarms and scaling. Default: ``llm``.
    :param image: container image. Default: the built-in image of ``kind``.
    :param container_port: port the server listens on. Default: 8000 (Triton HTTP).
    :param environment: extra container environment (non-secret configuration).
    :param model_artifact: ``s3://bucket/prefix`` the tasks may read. Default: none.
    :param weights_gib: size of the weights, for root volumes. Default: 0.
    :param routing: target group algorithm. Default: least outstanding requests.
    :param idle_timeout: load balancer idle timeout; a stream must send a byte within
        it. Default: 600 s for llm, 60 s for classifier.
    :param deregistration_delay: time for in-flight streams to finish when a task
        leaves. Default: 300 s for llm, 30 s for classifier.
    :param health_check: target health check. Default: ``GET /v2/health/ready`` (Triton
        readiness) every 30 s, 2 healthy / 3 unhealthy.
    :param health_check_grace_period: time to download, load and compile the model
        before failed checks count. Default: 20 minutes.
    :param requests_per_target_per_minute: autoscaling target on ALB requests per
        target. Default: 120 for llm, 60000 for classifier.
    :param scale_in_cooldown: Default: 10 minutes. :param scale_out_cooldown: Default: 1 minute.
    :param certificate: adds an HTTPS listener (TLS 1.2+) and redirects HTTP to it.
    :param internet_facing: public load balancer. Default: internal.
    :param allowed_cidrs: who may reach the load balancer. Default: the VPC CIDR.
    :param latency_alarm_p99: alarm when target response time P99 exceeds it.
        Default: 1 s for llm (time to first token), 10 ms for classifier.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        serving_cluster: NeuronServingCluster,
        pools: Sequence[NeuronPool],
        kind: ServiceKind = "llm",
        image: ecs.ContainerImage | None = None,
        container_port: int = 8000,
        environment: Mapping[str, str] | None = None,
        model_artifact: str | None = None,
        weights_gib: float = 0,
        routing: Routing = Routing.LEAST_OUTSTANDING_REQUESTS,
        idle_timeout: Duration | None = None,
        deregistration_delay: Duration | None = None,
        health_check: elbv2.HealthCheck | None = None,
        health_check_grace_period: Duration = Duration.minutes(20),
        requests_per_target_per_minute: int | None = None,
        scale_in_cooldown: Duration = Duration.minutes(10),
        scale_out_cooldown: Duration = Duration.minutes(1),
        certificate: acm.ICertificate | None = None,
        internet_facing: bool = False,
        allowed_cidrs: Sequence[str] | None = None,
        latency_alarm_p99: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        _validate(construct_id, pools, kind, model_artifact)
        self.kind = kind
        self.serving_cluster = serving_cluster
        vpc = serving_cluster.vpc

        self.load_balancer_security_group = ec2.SecurityGroup(
            self, "LoadBalancerSecurityGroup", vpc=vpc, allow_all_outbound=False
        )
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=internet_facing,
            security_group=self.load_balancer_security_group,
            idle_timeout=idle_timeout or _DEFAULT_IDLE_TIMEOUT[kind],
            drop_invalid_header_fields=True,
            vpc_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PUBLIC
                if internet_facing
                else ec2.SubnetType.PRIVATE_WITH_EGRESS
            ),
        )
        self.load_balancer.log_access_logs(
            serving_cluster.access_log_bucket, prefix=f"alb/{construct_id}"
        )
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            vpc=vpc,
            port=container_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            load_balancing_algorithm_type=routing,
            deregistration_delay=deregistration_delay or _DEFAULT_DEREGISTRATION_DELAY[kind],
            health_check=health_check
            or elbv2.HealthCheck(
                path="/v2/health/ready",
                interval=Duration.seconds(30),
                timeout=Duration.seconds(10),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
                healthy_http_codes="200",
            ),
        )
        self.listener = self._listeners(certificate, allowed_cidrs or [serving_cluster.vpc_cidr])

        self.task_security_group = ec2.SecurityGroup(
            self, "TaskSecurityGroup", vpc=vpc, allow_all_outbound=True
        )
        self.task_security_group.add_ingress_rule(
            self.load_balancer_security_group,
            ec2.Port.tcp(container_port),
            "model server, from the load balancer only",
        )
        self.load_balancer_security_group.add_egress_rule(
            self.task_security_group, ec2.Port.tcp(container_port), "to the model servers"
        )

        self.log_group = logs.LogGroup(self, "Logs", retention=serving_cluster.log_retention)
        self.task_role = iam.Role(
            self, "TaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com")
        )
        compile_cache_prefix = f"{Stack.of(self).stack_name}/{construct_id}/"
        _grant_prefix(
            self.task_role,
            serving_cluster.compile_cache_bucket.bucket_arn,
            compile_cache_prefix,
            ["s3:GetObject", "s3:PutObject"],
            why="Neuron compile artifacts of this service, under its own prefix",
        )
        if model_artifact:
            bucket, _, prefix = model_artifact.removeprefix("s3://").partition("/")
            _grant_prefix(
                self.task_role,
                f"arn:{Stack.of(self).partition}:s3:::{bucket}",
                prefix,
                ["s3:GetObject"],
                why="the model's weights: every object under the artifact prefix, read only",
            )

        self.image = image or built_in_image(kind)
        self.pools: dict[str, NeuronCapacityPool] = {}
        self.task_definitions: dict[str, ecs.Ec2TaskDefinition] = {}
        self.services: dict[str, ecs.Ec2Service] = {}
        common_environment = {
            "INFERFLEET_SERVICE_KIND": kind,
            # The AWS CLI in the image fetches the model; name the region, don't rely on redirects.
            "AWS_DEFAULT_REGION": Stack.of(self).region,
            "INFERFLEET_MODEL_ARTIFACT": model_artifact or "",
            "INFERFLEET_COMPILE_CACHE_URL": serving_cluster.compile_cache_bucket.s3_url_for_object(
                compile_cache_prefix
            ),
            **(environment or {}),
        }
        for pool in pools:
            self._add_pool(
                pool,
                container_port=container_port,
                environment=common_environment,
                weights_gib=weights_gib,
                grace=health_check_grace_period,
                requests_per_target_per_minute=requests_per_target_per_minute
                or _DEFAULT_REQUESTS_PER_TARGET_PER_MINUTE[kind],
                scale_in_cooldown=scale_in_cooldown,
                scale_out_cooldown=scale_out_cooldown,
            )
        self.alarms = self._alarms(latency_alarm_p99 or _DEFAULT_P99_ALARM[kind])
        self._dashboard_widgets(construct_id)

    @property
    def endpoint_url(self) -> str:
        scheme = "https" if self._https else "http"
        return f"{scheme}://{self.load_balancer.load_balancer_dns_name}"

    def _listeners(
        self, certificate: acm.ICertificate | None, allowed_cidrs: Sequence[str]
    ) -> elbv2.ApplicationListener:
        self._https = certificate is not None
        port = 443 if certificate else 80
        for cidr in allowed_cidrs:
            self.load_balancer_security_group.add_ingress_rule(
                ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), f"clients in {cidr}"
            )
        if certificate is None:
            return self.load_balancer.add_listener(
                "Http", port=80, open=False, default_target_groups=[self.target_group]
            )
        for cidr in allowed_cidrs:
            self.load_balancer_security_group.add_ingress_rule(
                ec2.Peer.ipv4(cidr), ec2.Port.tcp(80), "redirected to HTTPS"
            )
        self.load_balancer.add_redirect(source_port=80, target_port=443, open=False)
        return self.load_balancer.add_listener(
            "Https",
            port=443,
            open=False,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_target_groups=[self.target_group],
        )

    def _add_pool(
        self,
        pool: NeuronPool,
        *,
        container_port: int,
        environment: Mapping[str, str],
        weights_gib: float,
        grace: Duration,
        requests_per_target_per_minute: int,
        scale_in_cooldown: Duration,
        scale_out_cooldown: Duration,
    ) -> None:
        instance = neuron_instance_type(pool.instance_type)
        pool_id = _pool_id(pool.instance_type)
        capacity = NeuronCapacityPool(
            self,
            f"{pool_id}Capacity",
            cluster=self.serving_cluster.cluster,
            instance=instance,
            min_capacity=0,
            max_capacity=pool.max_capacity,
            notification_topic=self.serving_cluster.alarm_topic,
            weights_gib=weights_gib,
        )
        self.task_security_group.connections.allow_from(
            capacity.security_group, ec2.Port.all_traffic(), "instance to its tasks"
        )
        task_definition = ecs.Ec2TaskDefinition(
            self,
            f"{pool_id}Task",
            network_mode=ecs.NetworkMode.AWS_VPC,
            task_role=self.task_role,
            placement_constraints=[
                ecs.PlacementConstraint.member_of(f"attribute:ecs.instance-type == {instance.name}")
            ],
        )
        linux_parameters = ecs.LinuxParameters(
            self,
            f"{pool_id}LinuxParameters",
            # Neuron runtime collectives use host shared memory across replicas.
            shared_memory_size=max(1024, instance.memory_gib * 1024 // 8),
        )
        linux_parameters.add_capabilities(ecs.Capability.IPC_LOCK)
        for path in instance.device_paths:
            linux_parameters.add_devices(
                ecs.Device(
                    host_path=path,
                    container_path=path,
                    permissions=[ecs.DevicePermission.READ, ecs.DevicePermission.WRITE],
                )
            )
        container = task_definition.add_container(
            "model",
            image=self.image,
            # The task owns the instance: leave ~10% for the OS and the ECS agent.
            cpu=instance.vcpus * 1024 * 9 // 10,
            memory_reservation_mib=instance.memory_gib * 1024 * 9 // 10,
            linux_parameters=linux_parameters,
            port_mappings=[ecs.PortMapping(container_port=container_port)],
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix=pool_id.lower(),
                log_group=self.log_group,
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
            ),
            environment={
                **environment,
                "INFERFLEET_INSTANCE_TYPE": instance.name,
                "INFERFLEET_TP_DEGREE": str(pool.tensor_parallel),
                "INFERFLEET_NEURON_CORES": str(instance.neuron_cores),
                "INFERFLEET_REPLICAS": str(instance.neuron_cores // pool.tensor_parallel),
                "NEURON_RT_VISIBLE_CORES": f"0-{instance.neuron_cores - 1}",
            },
        )
        acknowledge(
            task_definition,
            "AwsSolutions-ECS2",
            "the environment holds sizing and locations (TP degree, cores, S3 URIs), no secrets",
        )
        acknowledge(
            task_definition.obtain_execution_role(),
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions",
        )
        container.add_ulimits(
            ecs.Ulimit(name=ecs.UlimitName.MEMLOCK, soft_limit=-1, hard_limit=-1),
            ecs.Ulimit(name=ecs.UlimitName.NOFILE, soft_limit=65535, hard_limit=65535),
        )
        service = ecs.Ec2Service(
            self,
            f"{pool_id}Service",
            cluster=self.serving_cluster.cluster,
            task_definition=task_definition,
            desired_count=pool.min_capacity,
            capacity_provider_strategies=[
                ecs.CapacityProviderStrategy(
                    capacity_provider=capacity.capacity_provider.capacity_provider_name, weight=1
                )
            ],
            placement_constraints=[ecs.PlacementConstraint.distinct_instances()],
            security_groups=[self.task_security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # A replacement needs a whole instance: start it before stopping the old task.
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=grace,
            enable_ecs_managed_tags=True,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        service.attach_to_application_target_group(self.target_group)
        scaling = service.auto_scale_task_count(
            min_capacity=pool.min_capacity, max_capacity=pool.max_capacity
        )
        scaling.scale_on_request_count(
            "RequestsPerTarget",
            requests_per_target=requests_per_target_per_minute,
            target_group=self.target_group,
            scale_in_cooldown=scale_in_cooldown,
            scale_out_cooldown=scale_out_cooldown,
        )
        self.pools[pool.instance_type] = capacity
        self.task_definitions[pool.instance_type] = task_definition
        self.services[pool.instance_type] = service

    def _alarms(self, latency_p99: Duration) -> dict[str, cloudwatch.Alarm]:
        metrics = self.target_group.metrics
        minute = Duration.minutes(1)
        alarms = {
            "Target5xx": cloudwatch.Alarm(
                self,
                "Target5xxAlarm",
                alarm_description="Model servers answer with 5xx",
                metric=metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=minute, statistic="Sum"
                ),
                threshold=5,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "UnhealthyHosts": cloudwatch.Alarm(
                self,
                "UnhealthyHostsAlarm",
                alarm_description="Targets fail the readiness check",
                metric=metrics.unhealthy_host_count(period=minute, statistic="Maximum"),
                threshold=1,
                evaluation_periods=5,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "TargetResponseTimeP99": cloudwatch.Alarm(
                self,
                "TargetResponseTimeP99Alarm",
                alarm_description=(
                    "P99 time to the first response byte (time to first token for streams)"
                ),
                metric=metrics.target_response_time(period=Duration.minutes(5), statistic="p99"),
                threshold=latency_p99.to_milliseconds() / 1000,
                evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        action = cloudwatch_actions.SnsAction(self.serving_cluster.alarm_topic)
        for alarm in alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        return alarms

    def _dashboard_widgets(self, title: str) -> None:
        metrics = self.target_group.metrics
        five_minutes = Duration.minutes(5)
        self.serving_cluster.dashboard.add_widgets(
            cloudwatch.TextWidget(markdown=f"## {title} ({self.kind})", width=24, height=1),
            cloudwatch.GraphWidget(
                title="Requests per target",
                left=[metrics.request_count_per_target(period=Duration.minutes(1))],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Target response time (first byte)",
                left=[
                    metrics.target_response_time(period=five_minutes, statistic=stat, label=stat)
                    for stat in ("p50", "p90", "p99")
                ],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Target 5xx / healthy hosts",
                left=[metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT)],
                right=[metrics.healthy_host_count(), metrics.unhealthy_host_count()],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title="Tasks CPU by pool",
                left=[service.metric_cpu_utilization() for service in self.services.values()],
                width=6,
            ),
        )


def _pool_id(instance_type: str) -> str:
    return "".join(part.capitalize() for part in instance_type.replace(".", "-").split("-"))


def _grant_prefix(
    role: iam.Role, bucket_arn: str, prefix: str, actions: list[str], *, why: str
) -> None:
    role.add_to_policy(iam.PolicyStatement(actions=actions, resources=[f"{bucket_arn}/{prefix}*"]))
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        )
    )
    acknowledge(
        role, f"AwsSolutions-IAM5[Resource::{nag_resource(role, bucket_arn)}/{prefix}*]", why
    )


def _validate(
    construct_id: str, pools: Sequence[NeuronPool], kind: str, model_artifact: str | None
) -> None:
    if kind not in BUILT_IN_IMAGES:
        raise ValueError(f"{construct_id}: kind {kind!r} must be one of llm, classifier")
    if not pools:
        raise ValueError(f"{construct_id}: give at least one pool")
    if model_artifact is not None and not model_artifact.startswith("s3://"):
        raise ValueError(f"{construct_id}: model_artifact {model_artifact!r} must be an s3:// URI")
    seen: set[str] = set()
    for pool in pools:
        instance = neuron_instance_type(pool.instance_type)
        if pool.instance_type in seen:
            raise ValueError(
                f"{construct_id}: two pools of {pool.instance_type}; merge them into one"
            )
        seen.add(pool.instance_type)
        if pool.tensor_parallel < 1 or instance.neuron_cores % pool.tensor_parallel:
            degrees = ", ".join(map(str, instance.tensor_parallel_degrees()))
            raise ValueError(
                f"{construct_id}: tensor_parallel {pool.tensor_parallel} must divide the "
                f"{instance.neuron_cores} NeuronCores of {instance.name} (one of {degrees})"
            )
        if not 0 <= pool.min_capacity <= pool.max_capacity or pool.max_capacity < 1:
            raise ValueError(
                f"{construct_id}: pool {pool.instance_type} needs 0 <= min_capacity "
                f"({pool.min_capacity}) <= max_capacity ({pool.max_capacity}) and max >= 1"
            )
