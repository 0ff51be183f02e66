"""GlobalTraffic: one name per service over its regional ALBs, re-weighted every period.

Built in one (home) region, after the regional stacks it points at:

- a hosted zone (public, or private and associated with each region's VPC so internal ALBs
  are reached by name), or an existing one;
- per service and region a Route 53 health check that follows the region's CloudWatch alarm
  (CLOUDWATCH_METRIC: it works for internal ALBs, which Route 53's checkers cannot reach) and
  a weighted alias record to the ALB — or, in ``global_accelerator`` mode, an accelerator
  with a listener per service and an endpoint group per region;
- the controller (:mod:`inferfleet.constructs.traffic_controller`) on an EventBridge schedule,
  its SSM parameters (operators' overrides, its own state, one document per service), and
  alarms: the fleet lacks
  capacity for its load (FleetCapacityUtilization >= 1 for 3 periods), the controller fails.

The records are created with an even split; afterwards the controller owns their weights
and nothing else (a template change to a record resets its weight until the next period).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_globalaccelerator as globalaccelerator
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from inferfleet.constructs.finetune_queue import POWERTOOLS_ACCOUNT, RUNTIME
from inferfleet.constructs.nag import acknowledge, acknowledged_policy, nag_resource
from inferfleet.constructs.props.global_traffic import GlobalTrafficProps, TrafficService
from inferfleet.constructs.props.problems import raise_for
from inferfleet.constructs.traffic_controller import overrides
from inferfleet.constructs.traffic_controller.config import (
    CONFIG_ENV,
    GLOBAL_ACCELERATOR,
    service_parameter_name,
)
from inferfleet.constructs.traffic_controller.handler import (
    CHANGED_METRIC,
    UTILIZATION_METRIC,
    WEIGHT_METRIC,
)
from inferfleet.constructs.traffic_controller.weights import TOTAL, apportion

CONTROLLER_PACKAGE = "traffic_controller"
METRIC_NAMESPACE = "Inferfleet/Traffic"
CAPACITY_ALARM_PERIODS = 3
_FIRST_LISTENER_PORT = 443


class GlobalTraffic(Construct):
    """See the module docstring; ``props`` say what, :class:`GlobalTrafficProps` the defaults.

    Raw resources stay reachable: ``hosted_zone``, ``records`` and ``health_checks`` (by
    ``(service, region)``), ``accelerator``, ``endpoint_groups``, ``controller``,
    ``schedule``, ``override_parameter``, ``state_parameter``, ``service_parameters``,
    ``alarms``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        props: GlobalTrafficProps,
    ) -> None:
        super().__init__(scope, construct_id)
        raise_for(self.node.path, props.problems())
        self.props = props
        self.records: dict[tuple[str, str], route53.CfnRecordSet] = {}
        self.health_checks: dict[tuple[str, str], route53.CfnHealthCheck] = {}
        self.endpoint_groups: dict[tuple[str, str], globalaccelerator.CfnEndpointGroup] = {}
        self.accelerator: globalaccelerator.CfnAccelerator | None = None
        self.hosted_zone_id = self._zone()
        if props.mode == GLOBAL_ACCELERATOR:
            self._accelerator()
        else:
            for service in props.services:
                self._records(service)
        override_name, state_name = props.parameters
        self.override_parameter = ssm.StringParameter(
            self,
            "Overrides",
            parameter_name=override_name,
            string_value=overrides.EMPTY,
            description=f"Operators' traffic overrides of fleet {props.fleet} (inferfleet traffic)",
        )
        self.state_parameter = ssm.StringParameter(
            self,
            "State",
            parameter_name=state_name,
            string_value="{}",
            description=f"Traffic controller state of fleet {props.fleet}",
        )
        self.service_parameters = {
            service.name: ssm.StringParameter(
                self,
                f"{service.name}-Document",
                parameter_name=service_parameter_name(props.fleet, service.name),
                string_value=Stack.of(self).to_json_string(self.service_document(service)),
                description=f"What the traffic controller reads of {props.fleet} {service.name}",
            )
            for service in props.services
        }
        self.controller: lambda_.Function | None = None
        self.schedule: events.Rule | None = None
        if props.controller:
            self.controller = self._controller(props.powertools_layer_version)
            self.schedule = events.Rule(
                self,
                "Schedule",
                description=f"Every control period of fleet {props.fleet}'s traffic controller",
                schedule=events.Schedule.rate(Duration.seconds(props.period_s)),
                targets=[targets.LambdaFunction(self.controller, retry_attempts=0)],
            )
        self.alarms = self._alarms()

    def _zone(self) -> str:
        props = self.props
        self.hosted_zone: route53.CfnHostedZone | None = None
        if props.hosted_zone_id is not None:
            return props.hosted_zone_id
        self.hosted_zone = route53.CfnHostedZone(
            self,
            "Zone",
            name=props.zone_name,
            hosted_zone_config=route53.CfnHostedZone.HostedZoneConfigProperty(
                comment=f"inferfleet fleet {props.fleet}"
            ),
            vpcs=[
                route53.CfnHostedZone.VPCProperty(vpc_id=vpc_id, vpc_region=region)
                for vpc_id, region in props.private_zone_vpcs
            ]
            or None,
        )
        return self.hosted_zone.ref

    def record_name(self, service: TrafficService) -> str:
        return f"{service.label}.{self.props.zone_name.rstrip('.')}."

    def _records(self, service: TrafficService) -> None:
        start = apportion(TOTAL, {endpoint.region: 1.0 for endpoint in service.endpoints})
        for endpoint in service.endpoints:
            key = (service.name, endpoint.region)
            check = route53.CfnHealthCheck(
                self,
                f"{service.name}-{endpoint.region}-Health",
                health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
                    type="CLOUDWATCH_METRIC",
                    alarm_identifier=route53.CfnHealthCheck.AlarmIdentifierProperty(
                        name=endpoint.health_alarm_name, region=endpoint.region
                    ),
                    insufficient_data_health_status="LastKnownStatus",
                ),
                health_check_tags=[
                    route53.CfnHealthCheck.HealthCheckTagProperty(
                        key="Name", value=f"{self.props.fleet} {service.name} {endpoint.region}"
                    )
                ],
            )
            self.health_checks[key] = check
            self.records[key] = route53.CfnRecordSet(
                self,
                f"{service.name}-{endpoint.region}-Record",
                hosted_zone_id=self.hosted_zone_id,
                name=self.record_name(service),
                type="A",
                set_identifier=endpoint.region,
                weight=start[endpoint.region],
                # Ref is the health check's id, as GetAtt HealthCheckId is; moto resolves
                # only Ref.
                health_check_id=check.ref,
                alias_target=route53.CfnRecordSet.AliasTargetProperty(
                    dns_name=endpoint.dns_name,
                    hosted_zone_id=endpoint.canonical_hosted_zone_id,
                    evaluate_target_health=True,
                ),
            )

    def _accelerator(self) -> None:
        self.accelerator = globalaccelerator.CfnAccelerator(
            self, "Accelerator", name=f"{self.props.fleet}"[:64], enabled=True
        )
        for index, service in enumerate(self.props.services):
            listener = globalaccelerator.CfnListener(
                self,
                f"{service.name}-Listener",
                accelerator_arn=self.accelerator.attr_accelerator_arn,
                port_ranges=[
                    globalaccelerator.CfnListener.PortRangeProperty(
                        from_port=_FIRST_LISTENER_PORT + index, to_port=_FIRST_LISTENER_PORT + index
                    )
                ],
                protocol="TCP",
                client_affinity="NONE",
            )
            for endpoint in service.endpoints:
                self.endpoint_groups[(service.name, endpoint.region)] = (
                    globalaccelerator.CfnEndpointGroup(
                        self,
                        f"{service.name}-{endpoint.region}-Group",
                        listener_arn=listener.attr_listener_arn,
                        endpoint_group_region=endpoint.region,
                        traffic_dial_percentage=100,
                        endpoint_configurations=[
                            globalaccelerator.CfnEndpointGroup.EndpointConfigurationProperty(
                                endpoint_id=endpoint.load_balancer_arn,
                                weight=128,
                                client_ip_preservation_enabled=True,
                            )
                        ],
                    )
                )

    def service_document(self, service: TrafficService) -> dict[str, Any]:
        """What the controller reads of one service (tokens resolved by CloudFormation)."""
        endpoints = []
        for endpoint in service.endpoints:
            group = self.endpoint_groups.get((service.name, endpoint.region))
            endpoints.append(
                {
                    "region": endpoint.region,
                    "load_balancer": endpoint.load_balancer_full_name,
                    "target_group": endpoint.target_group_full_name,
                    "auto_scaling_groups": list(endpoint.auto_scaling_group_names),
                    "endpoint_group_arn": group.attr_endpoint_group_arn if group else "",
                }
            )
        return {
            "name": service.name,
            "hosted_zone_id": self.hosted_zone_id,
            "record_name": self.record_name(service),
            "policy": vars(service.policy),
            "endpoints": endpoints,
        }

    def controller_settings(self) -> dict[str, Any]:
        """The controller's environment document: fleet-wide settings, service parameters."""
        props = self.props
        override_name, state_name = props.parameters
        return {
            "fleet": props.fleet,
            "mode": props.mode,
            "period_s": props.period_s,
            "override_parameter": override_name,
            "state_parameter": state_name,
            "metric_namespace": METRIC_NAMESPACE,
            "service_parameters": [
                service_parameter_name(props.fleet, service.name) for service in props.services
            ],
        }

    def _controller(self, layer_version: int) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            "ControllerLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self, "ControllerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")
        )
        self._grant(role, log_group)
        function = lambda_.Function(
            self,
            "Controller",
            description=f"Re-weights fleet {self.props.fleet}'s regions every period",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=lambda_.Code.from_asset(
                str(Path(__file__).parent),
                exclude=["*", f"!{CONTROLLER_PACKAGE}", f"!{CONTROLLER_PACKAGE}/*.py"],
            ),
            handler=f"{CONTROLLER_PACKAGE}.handler.handler",
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    self,
                    "Powertools",
                    f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{POWERTOOLS_ACCOUNT}:layer:"
                    f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{layer_version}",
                )
            ],
            timeout=Duration.seconds(min(self.props.period_s, 120)),
            memory_size=256,
            role=role,
            log_group=log_group,
            # One decision at a time: two overlapping runs would both move by the step.
            reserved_concurrent_executions=1,
            environment={
                CONFIG_ENV: Stack.of(self).to_json_string(self.controller_settings()),
                "POWERTOOLS_SERVICE_NAME": "inferfleet-traffic-controller",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            "the runtime is the one the Powertools public layer is built for "
            "(AWSLambdaPowertoolsPythonV3-python313); move both together",
        )
        return function

    def _grant(self, role: iam.Role, log_group: logs.LogGroup) -> None:
        props = self.props
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        acknowledged_policy(
            role,
            "MetricsPolicy",
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "cloudwatch:GetMetricData has no resource types; PutMetricData is limited "
                    f"to the {METRIC_NAMESPACE} namespace by condition"
                )
            },
            [
                iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
                ),
            ],
        )
        override_name, state_name = props.parameters
        read_only = (
            override_name,
            *(service_parameter_name(props.fleet, service.name) for service in props.services),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"],
                resources=[self._parameter_arn(name) for name in read_only],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:PutParameter"],
                resources=[self._parameter_arn(state_name)],
            )
        )
        if props.mode == GLOBAL_ACCELERATOR:
            assert self.accelerator is not None
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "globalaccelerator:DescribeEndpointGroup",
                        "globalaccelerator:UpdateEndpointGroup",
                    ],
                    resources=[f"{self.accelerator.attr_accelerator_arn}/*"],
                )
            )
        else:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets"],
                    resources=[f"arn:{Aws.PARTITION}:route53:::hostedzone/{self.hosted_zone_id}"],
                )
            )
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{nag_resource(role, log_group.log_group_arn)}]",
            "Lambda creates a log stream per execution environment in the function's own log group",
        )
        if props.mode == GLOBAL_ACCELERATOR:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{stack.resolve(self.accelerator.logical_id)}.AcceleratorArn>/*]",  # type: ignore[union-attr]
                "endpoint groups of this accelerator only (their ARNs extend the accelerator's)",
            )

    def _parameter_arn(self, name: str) -> str:
        return Stack.of(self).format_arn(
            service="ssm", resource="parameter", resource_name=name.lstrip("/")
        )

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        props = self.props
        topic = (
            sns.Topic.from_topic_arn(self, "AlarmTopic", props.alarm_topic_arn)
            if props.alarm_topic_arn
            else None
        )
        period = Duration.seconds(props.period_s)
        alarms: dict[str, cloudwatch.Alarm] = {}
        for service in props.services:
            alarms[f"{service.name}-capacity"] = cloudwatch.Alarm(
                self,
                f"{service.name}-FleetCapacity",
                alarm_description=(
                    f"{props.fleet} {service.name}: the whole fleet lacks capacity for its load "
                    "(requests per target over the scaling target, every region at its maximum)"
                ),
                metric=cloudwatch.Metric(
                    namespace=METRIC_NAMESPACE,
                    metric_name=UTILIZATION_METRIC,
                    dimensions_map={"Fleet": props.fleet, "Service": service.name},
                    statistic="Maximum",
                    period=period,
                ),
                threshold=1.0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=CAPACITY_ALARM_PERIODS,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        if self.controller is not None:
            alarms["controller-errors"] = cloudwatch.Alarm(
                self,
                "ControllerErrors",
                alarm_description=(
                    f"{props.fleet}: the traffic controller failed 3 periods in a row"
                ),
                metric=self.controller.metric_errors(period=period, statistic="Sum"),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
        if topic is not None:
            for alarm in alarms.values():
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return alarms


__all__ = ["CHANGED_METRIC", "METRIC_NAMESPACE", "WEIGHT_METRIC", "GlobalTraffic"]
