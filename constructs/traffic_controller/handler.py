"""The traffic controller Lambda, run by an EventBridge schedule once per control period.

Per service: read the weights in force (Route 53 records or Global Accelerator dials), each
region's signals from CloudWatch and the operators' overrides from SSM; :func:`~.weights.decide`;
write the weights when they changed; log the decision (inputs, weights, reason per region) as
one structured line; put the weights and the fleet's capacity utilization as CloudWatch
metrics (an alarm on utilization >= 1 says the whole fleet lacks capacity). The controller's
memory (status and hysteresis per region, and the last decision, which ``inferfleet traffic
status`` shows) is one SSM parameter.

A second invocation within half a period (a retried or duplicated schedule event) does
nothing, so a period never moves weights twice.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config

from . import overrides as override_document
from .config import ACCELERATOR_API_REGION, GLOBAL_ACCELERATOR, ControllerConfig, Service
from .signals import read_signals
from .weights import RegionSignals, RegionState, decide
from .writers import AcceleratorDials, Route53Weights

logger = Logger(service="inferfleet-traffic-controller")
WEIGHT_METRIC = "Weight"
UTILIZATION_METRIC = "FleetCapacityUtilization"
CHANGED_METRIC = "WeightChanges"


@cache
def client(service: str, region: str | None = None) -> Any:
    """One boto3 client per service and region for the life of the execution environment."""
    config = Config(retries={"mode": "standard", "total_max_attempts": 3})
    return boto3.client(service, region_name=region or os.environ.get("AWS_REGION"), config=config)


class Controller:
    def __init__(self, config: ControllerConfig) -> None:
        self.config = config
        if config.mode == GLOBAL_ACCELERATOR:
            self.weights: Route53Weights | AcceleratorDials = AcceleratorDials(
                client("globalaccelerator", ACCELERATOR_API_REGION)
            )
        else:
            self.weights = Route53Weights(client("route53"))

    def run(self, now: float) -> dict[str, Any]:
        ssm = client("ssm")
        memory = _read_json(ssm, self.config.state_parameter) or {}
        decided_at = memory.get("decided_at")
        if decided_at is not None and now - float(decided_at) < self.config.period_s / 2:
            logger.info(
                "skipped: this period was decided already", extra={"decided_at": decided_at}
            )
            return {"skipped": True, "decided_at": decided_at}
        overrides = override_document.parse(_read_text(ssm, self.config.override_parameter))
        endpoints = {
            f"{service.name}/{endpoint.region}": endpoint
            for service in self.config.services
            for endpoint in service.endpoints
        }
        signals = read_signals(
            lambda region: client("cloudwatch", region),
            endpoints,
            self.config.period_s,
            datetime.fromtimestamp(now, UTC),
        )
        states = memory.get("services", {})
        report: dict[str, Any] = {"decided_at": now, "services": {}, "last": {}}
        metrics = []
        for service in self.config.services:
            entry, data = self._decide(
                service, signals, states.get(service.name, {}), overrides, now
            )
            report["services"][service.name] = entry["state"]
            report["last"][service.name] = entry["log"]
            metrics += data
        self._put_metrics(metrics)
        ssm.put_parameter(
            Name=self.config.state_parameter,
            Value=json.dumps(report, separators=(",", ":")),
            Type="String",
            Overwrite=True,
            Tier="Intelligent-Tiering",
        )
        return {"skipped": False, "services": report["last"]}

    def _decide(
        self,
        service: Service,
        signals: dict[str, RegionSignals],
        remembered: dict[str, Any],
        overrides: dict[str, Any],
        now: float,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        current = self.weights.read(service)
        decision = decide(
            current,
            {region: signals[f"{service.name}/{region}"] for region in service.regions},
            service.policy,
            {region: RegionState.from_dict(value) for region, value in remembered.items()},
            override_document.active_for(overrides, service.name, now),
            now=now,
        )
        log = {"fleet": self.config.fleet, "service": service.name, **decision.as_log()}
        if decision.changed:
            reasons = "; ".join(
                f"{region} {entry.previous}->{entry.weight}"
                for region, entry in decision.regions.items()
                if entry.weight != entry.previous
            )
            log["change"] = self.weights.write(service, decision.weights, f"inferfleet: {reasons}")
        logger.info("traffic decision", extra={"decision": log})
        stamp = datetime.fromtimestamp(now, UTC)
        dimensions = [
            {"Name": "Fleet", "Value": self.config.fleet},
            {"Name": "Service", "Value": service.name},
        ]
        data = [
            {
                "MetricName": WEIGHT_METRIC,
                "Dimensions": [*dimensions, {"Name": "Region", "Value": region}],
                "Timestamp": stamp,
                "Value": float(weight),
                "Unit": "Percent",
            }
            for region, weight in decision.weights.items()
        ]
        data.append(
            {
                "MetricName": CHANGED_METRIC,
                "Dimensions": dimensions,
                "Timestamp": stamp,
                "Value": 1.0 if decision.changed else 0.0,
                "Unit": "Count",
            }
        )
        if decision.fleet_utilization is not None:
            data.append(
                {
                    "MetricName": UTILIZATION_METRIC,
                    "Dimensions": dimensions,
                    "Timestamp": stamp,
                    "Value": min(decision.fleet_utilization, 1e6),
                    "Unit": "None",
                }
            )
        state = {region: value.as_dict() for region, value in decision.state.items()}
        return {"state": state, "log": _compact(log)}, data

    def _put_metrics(self, data: list[dict[str, Any]]) -> None:
        cloudwatch = client("cloudwatch")
        for first in range(0, len(data), 1000):
            cloudwatch.put_metric_data(
                Namespace=self.config.metric_namespace, MetricData=data[first : first + 1000]
            )


def _compact(log: dict[str, Any]) -> dict[str, Any]:
    """The last decision as ``traffic status`` shows it, small enough for the state parameter."""
    regions = {
        region: {
            "weight": entry["weight"],
            "previous": entry["previous"],
            "status": entry["status"],
            "reason": entry["reason"],
            "signals": {k: _round(v) for k, v in entry["signals"].items() if v is not None},
        }
        for region, entry in log["regions"].items()
    }
    return {
        "weights": log["weights"],
        "changed": log["changed"],
        "fleet_utilization": log["fleet_utilization"],
        "regions": regions,
    }


def _round(value: float) -> float:
    return round(value, 4)


def _read_text(ssm: Any, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def _read_json(ssm: Any, name: str) -> dict[str, Any] | None:
    text = _read_text(ssm, name)
    return json.loads(text) if text else None


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ssm = client("ssm")
    config = ControllerConfig.load(lambda name: _read_text(ssm, name))
    return Controller(config).run(now=time.time())
