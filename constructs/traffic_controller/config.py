"""What the controller Lambda is told to control, from ``INFERFLEET_TRAFFIC_CONFIG`` (JSON).

The construct writes this document (CloudFormation resolves the ALB, target group and Auto
Scaling group names into it); the handler reads it once per execution environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .weights import WeightPolicy

CONFIG_ENV = "INFERFLEET_TRAFFIC_CONFIG"
ROUTE53 = "route53"
GLOBAL_ACCELERATOR = "global_accelerator"
MODES = (ROUTE53, GLOBAL_ACCELERATOR)
# Global Accelerator's control plane lives in one region whichever regions it serves.
ACCELERATOR_API_REGION = "us-west-2"


def parameter_names(fleet: str) -> tuple[str, str]:
    """The SSM parameters of a fleet's controller: (operators' overrides, controller state)."""
    base = f"/inferfleet/{fleet}/traffic"
    return f"{base}/overrides", f"{base}/state"


@dataclass(frozen=True)
class Endpoint:
    """One service in one region: what to read in CloudWatch and which record or group to set."""

    region: str
    load_balancer: str  # ALB full name, app/NAME/ID: the CloudWatch dimension
    target_group: str  # targetgroup/NAME/ID
    auto_scaling_groups: tuple[str, ...] = ()
    set_identifier: str = ""  # route53: the weighted record's SetIdentifier
    alias_dns_name: str = ""  # route53: the ALB's DNS name
    alias_hosted_zone_id: str = ""  # route53: the ALB's canonical hosted zone
    health_check_id: str = ""  # route53: the CloudWatch-alarm health check of the record
    endpoint_group_arn: str = ""  # global_accelerator: the region's endpoint group


@dataclass(frozen=True)
class Service:
    name: str
    endpoints: tuple[Endpoint, ...]
    policy: WeightPolicy = field(default_factory=WeightPolicy)
    hosted_zone_id: str = ""  # route53
    record_name: str = ""  # route53, fully qualified
    record_type: str = "A"

    @property
    def regions(self) -> list[str]:
        return [endpoint.region for endpoint in self.endpoints]


@dataclass(frozen=True)
class ControllerConfig:
    fleet: str
    mode: str
    period_s: int
    override_parameter: str
    state_parameter: str
    metric_namespace: str
    services: tuple[Service, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ControllerConfig:
        policy_fields = {item.name for item in fields(WeightPolicy)}
        services = []
        for entry in data["services"]:
            endpoints = tuple(
                Endpoint(
                    **{
                        **endpoint,
                        "auto_scaling_groups": tuple(endpoint.get("auto_scaling_groups", ())),
                    }
                )
                for endpoint in entry["endpoints"]
            )
            policy = WeightPolicy(
                **{k: v for k, v in entry.get("policy", {}).items() if k in policy_fields}
            )
            services.append(
                Service(
                    name=entry["name"],
                    endpoints=endpoints,
                    policy=policy,
                    hosted_zone_id=entry.get("hosted_zone_id", ""),
                    record_name=entry.get("record_name", ""),
                    record_type=entry.get("record_type", "A"),
                )
            )
        config = cls(
            fleet=data["fleet"],
            mode=data.get("mode", ROUTE53),
            period_s=int(data.get("period_s", 60)),
            override_parameter=data["override_parameter"],
            state_parameter=data["state_parameter"],
            metric_namespace=data.get("metric_namespace", "Inferfleet/Traffic"),
            services=tuple(services),
        )
        if config.mode not in MODES:
            raise ValueError(f"mode {config.mode!r} is not one of {', '.join(MODES)}")
        return config

    @classmethod
    def from_environment(cls) -> ControllerConfig:
        return cls.from_dict(json.loads(os.environ[CONFIG_ENV]))
