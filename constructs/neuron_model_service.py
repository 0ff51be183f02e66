"""One model served by ECS tasks on Neuron instances behind its own load balancer."""

from collections.abc import Sequence

from aws_cdk import Annotations, Duration, Stack, Token
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from inferfleet.constructs.container_images import BuiltInImage, image_asset_options
from inferfleet.constructs.nag import RoutingRole, acknowledge, nag_resource, only_actions
from inferfleet.constructs.neuron_capacity_pool import NeuronCapacityPool
from inferfleet.constructs.neuron_serving_cluster import NeuronServingCluster
from inferfleet.constructs.props.capacity_pool import NeuronCapacityPoolProps
from inferfleet.constructs.props.model_service import (
    HealthCheck,
    NeuronModelServiceProps,
    NeuronPool,
)
from inferfleet.constructs.props.problems import PropsProblem, raise_for
from inferfleet.containers.common.serving_env import ServiceKind

__all__ = ["HealthCheck", "NeuronModelService", "NeuronModelServiceProps", "NeuronPool"]

BUILT_IN_IMAGES: dict[ServiceKind, BuiltInImage] = {
    "llm": "llm-neuron",
    "classifier": "intent-neuron",
}


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
    balancer spreads requests over inf2 and trn1 instances alike. With
    ``protocol="grpc"`` the target group speaks gRPC (HTTP/2) to Triton's gRPC port and
    checks ``ServerReady`` for gRPC code 0, behind the HTTPS listener gRPC requires.

    :param props: what the service is (:class:`NeuronModelServiceProps`, every default
        documented there); checked at construction, errors name this construct's path.
    :param serving_cluster: cluster, network, buckets and alarm topic to use (each may be an
        existing one: see :class:`NeuronServingCluster`).
    :param vpc_subnets: where the instances and tasks run. Default: the private subnets with
        egress.
    :param load_balancer: an existing application load balancer to add this service's
        listener to (its scheme must match ``props.internet_facing``; its security group gets
        the client and task rules; its access logs stay as its owner set them). Default: a
        new one.
    :param image: a container image object, instead of ``props.image_uri`` /
        ``props.image_asset_path``. Default: from the props, else the built-in image.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: NeuronModelServiceProps,
        serving_cluster: NeuronServingCluster,
        image: ecs.ContainerImage | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        load_balancer: elbv2.ApplicationLoadBalancer | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        problems = props.problems(
            region=None if Token.is_unresolved(region) else region,
            public_subnets=bool(serving_cluster.vpc.public_subnets),
        )
        if load_balancer is not None:
            scheme = load_balancer.node.default_child.scheme  # type: ignore[union-attr]
            facing = (scheme or "internal") == "internet-facing"
            if facing != props.internet_facing:
                problems.append(
                    PropsProblem(
                        "internet_facing",
                        f"is {props.internet_facing} but the given load balancer is "
                        f"{scheme or 'internal'}; say what it is, so the checks for "
                        "internet-facing services apply",
                    )
                )
        raise_for(self.node.path, problems)
        props = props.resolved()
        self.props = props
        for warning in props.warnings():
            Annotations.of(self).add_warning_v2(
                f"inferfleet:{warning.field}", f"{warning.field}: {warning.message}"
            )
        self.kind = props.kind
        self.serving_cluster = serving_cluster
        vpc = serving_cluster.vpc
        self.vpc_subnets = vpc_subnets or ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
        )

        if load_balancer is not None:
            self.load_balancer = load_balancer
            self.load_balancer_security_group = load_balancer.connections.security_groups[0]
        else:
            self.load_balancer_security_group = ec2.SecurityGroup(
                self, "LoadBalancerSecurityGroup", vpc=vpc, allow_all_outbound=False
            )
            self.load_balancer = elbv2.ApplicationLoadBalancer(
                self,
                "LoadBalancer",
                vpc=vpc,
                internet_facing=props.internet_facing,
                security_group=self.load_balancer_security_group,
                idle_timeout=Duration.seconds(props.idle_timeout_s),
                drop_invalid_header_fields=True,
                vpc_subnets=ec2.SubnetSelection(
                    subnet_type=ec2.SubnetType.PUBLIC
                    if props.internet_facing
                    else ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
            )
            self.load_balancer.log_access_logs(
                serving_cluster.access_log_bucket, prefix=f"alb/{construct_id}"
            )
        health = props.health_check
        grpc = props.protocol == "grpc"
        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "TargetGroup",
            vpc=vpc,
            port=props.container_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            # Plaintext HTTP/2 to the task: TLS ends at the load balancer's HTTPS listener.
            protocol_version=elbv2.ApplicationProtocolVersion.GRPC if grpc else None,
            target_type=elbv2.TargetType.IP,
            load_balancing_algorithm_type=getattr(
                elbv2.TargetGroupLoadBalancingAlgorithmType, props.routing.alb.upper()
            ),
            deregistration_delay=Duration.seconds(props.deregistration_delay_s),
            health_check=elbv2.HealthCheck(
                path=health.path,
                interval=Duration.seconds(health.interval_s),
                timeout=Duration.seconds(health.timeout_s),
                healthy_threshold_count=health.healthy_threshold,
                unhealthy_threshold_count=health.unhealthy_threshold,
                healthy_http_codes=None if grpc else health.healthy_http_codes,
                healthy_grpc_codes=health.healthy_grpc_codes if grpc else None,
            ),
        )
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", props.certificate_arn)
            if props.certificate_arn
            else None
        )
        self.listener = self._listeners(
            certificate, props.ingress_cidrs or (serving_cluster.vpc_cidr,)
        )
        if props.internet_facing and props.open_to_the_internet:
            acknowledge(
                self.load_balancer_security_group,
                "AwsSolutions-EC23",
                "an internet-facing service its props open to every address (allowed_cidrs "
                "cover 0.0.0.0/0)",
            )
        self.web_acl_association = (
            wafv2.CfnWebACLAssociation(
                self,
                "WebAcl",
                resource_arn=self.load_balancer.load_balancer_arn,
                web_acl_arn=props.web_acl_arn,
            )
            if props.web_acl_arn
            else None
        )

        self.task_security_group = ec2.SecurityGroup(
            self, "TaskSecurityGroup", vpc=vpc, allow_all_outbound=True
        )
        self.task_security_group.add_ingress_rule(
            self.load_balancer_security_group,
            ec2.Port.tcp(props.container_port),
            "model server, from the load balancer only",
        )
        self.load_balancer_security_group.add_egress_rule(
            self.task_security_group, ec2.Port.tcp(props.container_port), "to the model servers"
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
        if props.model_artifact_location:
            bucket, prefix = props.model_artifact_location
            _grant_prefix(
                self.task_role,
                f"arn:{Stack.of(self).partition}:s3:::{bucket}",
                prefix,
                ["s3:GetObject"],
                why="the model's weights: every object under the artifact prefix, read only",
            )

        self.image = image or _image(props)
        self.pools: dict[str, NeuronCapacityPool] = {}
        self.task_definitions: dict[str, ecs.Ec2TaskDefinition] = {}
        self.services: dict[str, ecs.Ec2Service] = {}
        compile_cache_url = serving_cluster.compile_cache_bucket.s3_url_for_object(
            compile_cache_prefix
        )
        self._container_secrets = self._secrets()
        for pool in props.pools:
            self._add_pool(pool, compile_cache_url)
        self.alarms = self._alarms() if props.alarms else {}
        if props.dashboard_widgets and serving_cluster.dashboard is not None:
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

    def _secrets(self) -> dict[str, ecs.Secret]:
        secrets = {}
        for name, source in self.props.secret_sources.items():
            if source.service == "ssm":
                parameter = ssm.StringParameter.from_string_parameter_arn(
                    self, f"Secret{name}", source.arn
                )
                secrets[name] = ecs.Secret.from_ssm_parameter(parameter)
            else:
                secret = secretsmanager.Secret.from_secret_complete_arn(
                    self, f"Secret{name}", source.arn
                )
                secrets[name] = ecs.Secret.from_secrets_manager(secret, field=source.json_key)
        return secrets

    def _add_pool(self, pool: NeuronPool, compile_cache_url: str) -> None:
        props = self.props
        instance = pool.instance
        pool_id = _pool_id(pool.instance_type)
        capacity = NeuronCapacityPool(
            self,
            f"{pool_id}Capacity",
            props=NeuronCapacityPoolProps(
                instance_type=pool.instance_type,
                max_capacity=pool.max_capacity,
                weights_gib=props.weights_gib,
            ),
            cluster=self.serving_cluster.cluster,
            notification_topic=self.serving_cluster.alarm_topic,
            vpc_subnets=self.vpc_subnets,
        )
        self.task_security_group.connections.allow_from(
            capacity.security_group, ec2.Port.all_traffic(), "instance to its tasks"
        )
        execution_role = RoutingRole(
            self,
            f"{pool_id}ExecutionRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        )
        execution_role.route(
            only_actions("ecr:GetAuthorizationToken"),
            policy="EcrAuthorization",
            findings={
                "AwsSolutions-IAM5[Resource::*]": (
                    "ecr:GetAuthorizationToken has no resource types; the image pull itself is "
                    "limited to the image's repository"
                )
            },
        )
        task_definition = ecs.Ec2TaskDefinition(
            self,
            f"{pool_id}Task",
            network_mode=ecs.NetworkMode.AWS_VPC,
            task_role=self.task_role,
            execution_role=execution_role,
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
        serving_env = props.serving_env(pool, compile_cache_url=compile_cache_url)
        container = task_definition.add_container(
            "model",
            image=self.image,
            # The task owns the instance: leave ~10% for the OS and the ECS agent.
            cpu=instance.vcpus * 1024 * 9 // 10,
            memory_reservation_mib=instance.memory_gib * 1024 * 9 // 10,
            linux_parameters=linux_parameters,
            port_mappings=[ecs.PortMapping(container_port=props.container_port)],
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix=pool_id.lower(),
                log_group=self.log_group,
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
            ),
            environment={
                # The AWS CLI in the image fetches the model; name the region, no redirects.
                "AWS_DEFAULT_REGION": Stack.of(self).region,
                **serving_env.to_env(),
                **props.environment,
            },
            secrets=self._container_secrets,
        )
        acknowledge(
            task_definition,
            "AwsSolutions-ECS2",
            "the environment holds sizing and locations (TP degree, cores, S3 URIs); "
            "credentials go in secrets, read from Secrets Manager or SSM at task start",
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
            vpc_subnets=self.vpc_subnets,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            # A replacement needs a whole instance: start it before stopping the old task.
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(props.health_check_grace_period_s),
            enable_ecs_managed_tags=True,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        service.attach_to_application_target_group(self.target_group)
        scaling = service.auto_scale_task_count(
            min_capacity=pool.min_capacity, max_capacity=pool.max_capacity
        )
        if props.request_count_scaling:
            scaling.scale_on_request_count(
                "RequestsPerTarget",
                requests_per_target=props.requests_per_target_per_minute,
                target_group=self.target_group,
                scale_in_cooldown=Duration.seconds(props.scale_in_cooldown_s),
                scale_out_cooldown=Duration.seconds(props.scale_out_cooldown_s),
            )
        self.pools[pool.instance_type] = capacity
        self.task_definitions[pool.instance_type] = task_definition
        self.services[pool.instance_type] = service

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
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
                threshold=self.props.latency_alarm_p99_ms / 1000,
                evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        if self.props.health_alarm_name is not None:
            # Missing data (no load balancer metrics yet) is INSUFFICIENT_DATA, which the
            # health check that follows it reads as its last known status.
            alarms["RegionHealth"] = cloudwatch.Alarm(
                self,
                "RegionHealthAlarm",
                alarm_name=self.props.health_alarm_name,
                alarm_description="No healthy target: this region cannot serve the service",
                metric=metrics.healthy_host_count(period=minute, statistic="Minimum"),
                threshold=1,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.MISSING,
            )
        action = cloudwatch_actions.SnsAction(self.serving_cluster.alarm_topic)
        for alarm in alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        return alarms

    def _dashboard_widgets(self, title: str) -> None:
        metrics = self.target_group.metrics
        five_minutes = Duration.minutes(5)
        self.serving_cluster.dashboard.add_widgets(  # type: ignore[union-attr]
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


def _image(props: NeuronModelServiceProps) -> ecs.ContainerImage:
    if props.image_uri:
        return ecs.ContainerImage.from_registry(props.image_uri)
    if props.image_asset_path:
        return ecs.ContainerImage.from_asset(props.image_asset_path)
    return built_in_image(props.kind)
