"""The fleet's traffic layer: one stack in the home region, a loop over the global plan.

It points at load balancers the regional stacks made in other regions, which CloudFormation
cannot reference; the plan says which regional output each value comes from
(:class:`~inferfleet.infra.plan.GlobalParameter`), this stack declares one parameter for
each and puts it where the plan's props hold its deploy-time marker, and ``deploy`` fills
them from the regional stacks' outputs.
"""

from __future__ import annotations

from dataclasses import replace

from aws_cdk import CfnOutput, CfnParameter, Environment, Stack, Tags
from constructs import Construct

from inferfleet.constructs.global_traffic import GlobalTraffic
from inferfleet.constructs.props.global_traffic import (
    GlobalTrafficProps,
    TrafficEndpoint,
    deploy_time_parameter,
)
from inferfleet.infra import names
from inferfleet.infra.plan import GlobalPlan


class GlobalStack(Stack):
    """Weighted names over the regional load balancers and the controller that moves them."""

    def __init__(self, scope: Construct, plan: GlobalPlan) -> None:
        super().__init__(
            scope,
            plan.stack_name,
            env=Environment(account=plan.account, region=plan.region),
            description=plan.description,
        )
        self.plan = plan
        untagged = list(plan.untagged_resource_types) or None
        for key, value in plan.tags.items():
            Tags.of(self).add(key, value, exclude_resource_types=untagged)
        self.parameters = {
            parameter.name: CfnParameter(
                self,
                parameter.name,
                type="String",
                description=f"Output {parameter.output} of stack {parameter.stack} "
                f"({parameter.region}); inferfleet deploy passes it",
            )
            for parameter in plan.parameters
        }
        self.traffic = GlobalTraffic(self, "Traffic", props=self._with_parameters(plan.props))
        CfnOutput(self, names.GLOBAL_HOSTED_ZONE_ID, value=self.traffic.hosted_zone_id)
        for service in plan.props.services:
            CfnOutput(
                self,
                names.traffic_record_output(service.name),
                value=self.traffic.record_name(service),
            )

    def _with_parameters(self, props: GlobalTrafficProps) -> GlobalTrafficProps:
        def value(text: str) -> str:
            name = deploy_time_parameter(text)
            return text if name is None else self.parameters[name].value_as_string

        def endpoint(given: TrafficEndpoint) -> TrafficEndpoint:
            return replace(
                given,
                load_balancer_arn=value(given.load_balancer_arn),
                load_balancer_full_name=value(given.load_balancer_full_name),
                target_group_full_name=value(given.target_group_full_name),
                dns_name=value(given.dns_name),
                canonical_hosted_zone_id=value(given.canonical_hosted_zone_id),
                auto_scaling_group_names=tuple(map(value, given.auto_scaling_group_names)),
                health_alarm_name=value(given.health_alarm_name),
            )

        return replace(
            props,
            services=tuple(
                replace(service, endpoints=tuple(map(endpoint, service.endpoints)))
                for service in props.services
            ),
            private_zone_vpcs=tuple(
                (value(vpc), region) for vpc, region in props.private_zone_vpcs
            ),
        )
