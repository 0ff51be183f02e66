"""Props of the :class:`~inferfleet.constructs.global_traffic.GlobalTraffic` construct.

One DNS name per service in front of its regional ALBs (Route 53 weighted alias records, or
Global Accelerator endpoint groups with traffic dials), health checks that follow a regional
CloudWatch alarm (so they work for internal ALBs), and the controller Lambda that re-weights
the regions every period. Values that come from the regional stacks (ALB names, DNS names) may
be CloudFormation tokens; only literal values are checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from inferfleet.constructs.props.finetune_queue import FinetuneQueueProps
from inferfleet.constructs.props.problems import PropsProblem, in_range
from inferfleet.constructs.traffic_controller.config import (
    GLOBAL_ACCELERATOR,
    MODES,
    ROUTE53,
    parameter_names,
)
from inferfleet.constructs.traffic_controller.weights import WeightPolicy

# What the issue this answers to asks of a full shift away from a region.
MAX_SHIFT_S = 15 * 60
# Route 53 changes reach its name servers in about a minute, before any TTL starts to count.
ROUTE53_PROPAGATION_S = 60
# Global Accelerator documents no update latency; a dial change is assumed to apply as fast.
ACCELERATOR_PROPAGATION_S = 60
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ZONE = re.compile(r"^(?=.{1,253}$)((?!-)[a-z0-9-]{1,63}(?<!-)\.)*(?!-)[a-z0-9-]{1,63}(?<!-)\.?$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")


_DEPLOY_TIME = re.compile(r"^\{\{parameter:([A-Za-z0-9]{1,255})\}\}$")


def deploy_time(parameter: str) -> str:
    """A value a CloudFormation parameter named ``parameter`` gives at deploy time.

    For values another region's stack makes (an ALB's ARN): a stack cannot reference them
    across regions, so the app that builds the construct declares the parameter and puts
    its value in place of this marker (:func:`deploy_time_parameter` finds it). Like a
    token, it is not checked as a literal.
    """
    return "{{parameter:" + parameter + "}}"


def deploy_time_parameter(value: str) -> str | None:
    """The parameter name of a :func:`deploy_time` marker; None for any other value."""
    match = _DEPLOY_TIME.match(value)
    return match[1] if match else None


def _literal(value: str) -> bool:
    return (
        "${Token[" not in value
        and not value.startswith("#{")
        and deploy_time_parameter(value) is None
    )


@dataclass(frozen=True)
class TrafficEndpoint:
    """One service in one region, as its regional stack built it.

    :param region: the region.
    :param load_balancer_arn: the ALB's ARN (Global Accelerator endpoint id).
    :param load_balancer_full_name: ``app/NAME/ID``, the ALB's CloudWatch dimension.
    :param target_group_full_name: ``targetgroup/NAME/ID``.
    :param dns_name: the ALB's DNS name (alias target).
    :param canonical_hosted_zone_id: the ALB's hosted zone (alias target).
    :param auto_scaling_group_names: the service's capacity pools there (headroom).
    :param health_alarm_name: the regional alarm whose state is this region's DNS health
        (it must be in ``region``; INSUFFICIENT_DATA keeps the last known status).
    """

    region: str
    load_balancer_arn: str
    load_balancer_full_name: str
    target_group_full_name: str
    dns_name: str
    canonical_hosted_zone_id: str
    auto_scaling_group_names: tuple[str, ...]
    health_alarm_name: str

    def problems(self) -> list[PropsProblem]:
        found = []
        for name, prefix in (
            ("load_balancer_full_name", "app/"),
            ("target_group_full_name", "targetgroup/"),
        ):
            value = getattr(self, name)
            if _literal(value) and not value.startswith(prefix):
                found.append(
                    PropsProblem(name, f"{value!r} is not a full name; give {prefix}NAME/ID")
                )
        if not self.auto_scaling_group_names:
            found.append(
                PropsProblem(
                    "auto_scaling_group_names",
                    "list the service's Auto Scaling groups in the region (headroom)",
                )
            )
        return found


@dataclass(frozen=True)
class TrafficService:
    """One service's DNS name, its regions and how its weights react.

    :param name: the service.
    :param record_label: the label under the zone (``assistant`` gives
        ``assistant.<zone>``). Default: the service name.
    :param policy: the weight function's settings. Default: ``WeightPolicy()`` (objective
        1 s TTFT P99, step 20, floor 5).
    :param endpoints: the service in each region, at least one.
    """

    name: str
    endpoints: tuple[TrafficEndpoint, ...]
    policy: WeightPolicy = field(default_factory=WeightPolicy)
    record_label: str | None = None

    @property
    def label(self) -> str:
        return self.record_label or self.name

    def problems(self) -> list[PropsProblem]:
        found = [
            PropsProblem(f"policy.{name}", message) for name, message in self.policy.problems()
        ]
        if not _LABEL.match(self.label):
            found.append(
                PropsProblem(
                    "record_label",
                    f"{self.label!r} is not a DNS label; use lowercase letters, digits and "
                    "hyphens (1-63)",
                )
            )
        if not self.endpoints:
            found.append(PropsProblem("endpoints", "list the service's regions, at least one"))
        regions = [endpoint.region for endpoint in self.endpoints]
        if len(set(regions)) != len(regions):
            found.append(PropsProblem("endpoints", "a region is listed twice"))
        for index, endpoint in enumerate(self.endpoints):
            found += [p.under(f"endpoints[{index}]") for p in endpoint.problems()]
        return found


@dataclass(frozen=True)
class GlobalTrafficProps:
    """The global layer of a multi-region fleet. Defaults are the production choice.

    :param fleet: the fleet's name (metric dimension, parameter names).
    :param services: the services to put behind one name each.
    :param zone_name: the DNS zone of the names, e.g. ``shopping.internal``.
    :param private_zone_vpcs: ``(vpc_id, region)`` of each region's VPC, for a private zone
        that internal ALBs are reached through. Default: none, a public zone.
    :param hosted_zone_id: an existing zone to add the records to. Default: a new zone.
    :param mode: ``route53`` (weighted records) or ``global_accelerator`` (endpoint groups and
        traffic dials; internet-facing ALBs only). Default: route53.
    :param period_s: control period; the schedule's rate, a whole number of minutes. Default: 60.
    :param record_ttl_s: TTL of the weighted records. Default: 60.
    :param alarm_topic_arn: SNS topic for the fleet-capacity and controller alarms. Default:
        none (alarms without actions).
    :param override_parameter_name, state_parameter_name: the controller's SSM parameters.
        Default: ``/inferfleet/<fleet>/traffic/overrides`` and ``.../state``.
    :param powertools_layer_version: version of the public Powertools for AWS Lambda
        (Python) v3 layer. Default: the fine-tune queue's.
    :param controller: build the controller Lambda, its schedule and its error alarm; without
        it the records keep their even split (and overrides apply to nothing). Default: True.
    """

    fleet: str
    services: tuple[TrafficService, ...]
    zone_name: str
    private_zone_vpcs: tuple[tuple[str, str], ...] = ()
    hosted_zone_id: str | None = None
    mode: str = ROUTE53
    period_s: int = 60
    record_ttl_s: int = 60
    alarm_topic_arn: str | None = None
    override_parameter_name: str | None = None
    state_parameter_name: str | None = None
    powertools_layer_version: int = FinetuneQueueProps.powertools_layer_version
    controller: bool = True

    @property
    def parameters(self) -> tuple[str, str]:
        overrides, state = parameter_names(self.fleet)
        return self.override_parameter_name or overrides, self.state_parameter_name or state

    @property
    def propagation_s(self) -> int:
        return (
            ACCELERATOR_PROPAGATION_S if self.mode == GLOBAL_ACCELERATOR else ROUTE53_PROPAGATION_S
        )

    def worst_case_shift_s(self, service: TrafficService) -> int:
        """Seconds from a region breaking its objective to clients off it: the drain in steps of
        ``period_s``, then propagation, then the TTL of cached answers."""
        ttl = self.record_ttl_s if self.mode == ROUTE53 else 0
        return service.policy.periods_to_shift() * self.period_s + self.propagation_s + ttl

    def problems(self) -> list[PropsProblem]:
        found = []
        if self.mode not in MODES:
            found.append(PropsProblem("mode", f"{self.mode!r}: use one of {', '.join(MODES)}"))
        if self.period_s % 60 or not 60 <= self.period_s <= 900:
            found.append(
                PropsProblem(
                    "period_s",
                    f"{self.period_s} s: use whole minutes from 60 to 900 (the schedule's rate)",
                )
            )
        found += in_range("record_ttl_s", self.record_ttl_s, 0, 3600, "s")
        if not _ZONE.match(self.zone_name):
            found.append(
                PropsProblem(
                    "zone_name", f"{self.zone_name!r} is not a DNS name like fleet.internal"
                )
            )
        for index, (vpc_id, _region) in enumerate(self.private_zone_vpcs):
            if _literal(vpc_id) and not _VPC_ID.match(vpc_id):
                found.append(
                    PropsProblem(f"private_zone_vpcs[{index}]", f"{vpc_id!r}: give a vpc-... id")
                )
        if self.mode == GLOBAL_ACCELERATOR and self.private_zone_vpcs:
            found.append(
                PropsProblem(
                    "mode",
                    "Global Accelerator reaches internet-facing ALBs only; use route53 with a "
                    "private zone for internal ALBs",
                )
            )
        if not self.services:
            found.append(PropsProblem("services", "list at least one service"))
        labels = [service.label for service in self.services]
        if len(set(labels)) != len(labels):
            found.append(PropsProblem("services", "two services have the same record label"))
        for index, service in enumerate(self.services):
            found += [p.under(f"services[{index}]") for p in service.problems()]
            shift = self.worst_case_shift_s(service)
            if shift > MAX_SHIFT_S and not service.policy.problems():
                periods = service.policy.periods_to_shift()
                found.append(
                    PropsProblem(
                        f"services[{index}].policy.step",
                        f"a full shift away from a region takes {shift} s ({periods} periods "
                        f"of {self.period_s} s + {self.propagation_s} s propagation + TTL), over "
                        f"{MAX_SHIFT_S} s; raise step (now {service.policy.step}), or lower "
                        "period_s or record_ttl_s",
                    )
                )
        return found
