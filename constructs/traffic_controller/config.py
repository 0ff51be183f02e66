"""What the controller Lambda is told to control.

``INFERFLEET_TRAFFIC_CONFIG`` (JSON) holds the fleet-wide settings and the names of one SSM
parameter per service; each of those holds the service's document (its record, policy and
per-region names, which CloudFormation resolves from the regional stacks). Per service, so
no fleet outgrows Lambda's 4 KB of environment or a parameter's 4 KB; read every run, so a
stack update applies at the next period.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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


def service_parameter_name(fleet: str, service: str) -> str:
    """The SSM parameter that holds one service's document."""
    return f"/inferfleet/{fleet}/traffic/services/{service}"


@dataclass(frozen=True)
class Endpoint:
    """One service in one region: what to read in CloudWatch and which record or group to set."""

    region: str
    load_balancer: str  # ALB full name, app/NAME/ID: the CloudWatch dimension
    target_group: str  # targetgroup/NAME/ID
    auto_scaling_groups: tuple[str, ...] = ()
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
    def load(cls, read_parameter: Callable[[str], str | None]) -> ControllerConfig:
        """The environment's document with each service's document read from its parameter."""
        data = json.loads(os.environ[CONFIG_ENV])
        services = []
        for name in data["service_parameters"]:
            text = read_parameter(name)
            if not text:
                raise ValueError(f"service parameter {name} is missing; redeploy the global stack")
            services.append(json.loads(text))
        return cls.from_dict({**data, "services": services})
