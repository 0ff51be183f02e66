"""A three-region fleet as the traffic controller sees it, on a real moto server.

moto serves Route 53 (a private zone with weighted alias records), SSM and CloudWatch's plain
statistics in every region. moto's GetMetricData crashes on percentile statistics (p99
fails in its serializer), so the one percentile query per region — TargetResponseTime p99 —
is answered by :class:`PercentileAnswers`, a botocore ``before-call`` hook that replies in
GetMetricData's real response shape and lets every other call through to moto.

``make_world()`` builds it (after ``moto`` pointed boto3 at the server).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from inferfleet.constructs.traffic_controller import handler as controller_handler
from inferfleet.constructs.traffic_controller.config import ControllerConfig, parameter_names

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
RECORD = "assistant.shopping.internal."
FLEET = "shopping-assistant"
PERIOD_S = 60
NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
ALB_ZONES = {
    "us-east-1": "Z35SXDOTRQ7X7K",
    "us-west-2": "Z1H1FL5HABSF5",
    "eu-west-1": "Z32O12XQLNTSW2",
}


def load_balancer(region: str) -> str:
    return f"app/shopping-assistant-{region}/0123456789abcdef"


def target_group(region: str) -> str:
    return f"targetgroup/assistant-{region}/fedcba9876543210"


@dataclass
class PercentileAnswers:
    """TargetResponseTime p99 per region, served in GetMetricData's real response shape."""

    p99: dict[str, float] = field(default_factory=dict)
    asked: list[dict[str, Any]] = field(default_factory=list)

    def remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        stats = {query["MetricStat"]["Stat"] for query in params.get("MetricDataQueries", [])}
        if any(stat.startswith("p") for stat in stats):
            context["percentile_params"] = params

    def answer(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict] | None:
        params = context.get("percentile_params")
        if params is None:
            return None
        self.asked.append(params)
        results = []
        for query in params["MetricDataQueries"]:
            dimensions = {
                d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]
            }
            region = dimensions["LoadBalancer"].split("shopping-assistant-")[1].split("/")[0]
            value = self.p99.get(region)
            results.append(
                {
                    "Id": query["Id"],
                    "Label": "TargetResponseTime",
                    "Timestamps": [params["EndTime"] - timedelta(minutes=2)] if value else [],
                    "Values": [value] if value else [],
                    "StatusCode": "Complete",
                }
            )
        response = AWSResponse("https://monitoring.amazonaws.com/", 200, {}, None)
        return response, {"MetricDataResults": results, "Messages": []}

    def install(self, region: str) -> None:
        events = controller_handler.client("cloudwatch", region).meta.events
        events.register("before-parameter-build.cloudwatch.GetMetricData", self.remember)
        events.register("before-call.cloudwatch.GetMetricData", self.answer)


@dataclass
class TrafficWorld:
    zone_id: str
    config: ControllerConfig
    percentiles: PercentileAnswers
    health_checks: dict[str, str]

    def put(
        self, region: str, *, healthy: float | None = 10, max_size: float = 10, **extra: float
    ) -> None:
        """One period of ALB and Auto Scaling figures for ``region``, two minutes ago."""
        cloudwatch = boto3.client("cloudwatch", region_name=region)
        stamp = NOW - timedelta(minutes=2)
        both = [
            {"Name": "LoadBalancer", "Value": load_balancer(region)},
            {"Name": "TargetGroup", "Value": target_group(region)},
        ]
        alb = []
        if healthy is not None:
            alb.append({"MetricName": "HealthyHostCount", "Dimensions": both, "Value": healthy})
            alb.append(
                {
                    "MetricName": "RequestCount",
                    "Dimensions": both,
                    "Value": extra.get("requests", 600.0),
                }
            )
            alb.append(
                {
                    "MetricName": "RequestCountPerTarget",
                    "Dimensions": [{"Name": "TargetGroup", "Value": target_group(region)}],
                    "Value": extra.get("per_target", 60.0),
                }
            )
        if "errors" in extra:
            alb.append(
                {
                    "MetricName": "HTTPCode_Target_5XX_Count",
                    "Dimensions": both,
                    "Value": extra["errors"],
                }
            )
        if alb:
            cloudwatch.put_metric_data(
                Namespace="AWS/ApplicationELB",
                MetricData=[{**item, "Timestamp": stamp} for item in alb],
            )
        group = [{"Name": "AutoScalingGroupName", "Value": f"assistant-inf2-{region}"}]
        in_service = extra.get("in_service", healthy if healthy is not None else 0)
        cloudwatch.put_metric_data(
            Namespace="AWS/AutoScaling",
            MetricData=[
                {"MetricName": name, "Dimensions": group, "Value": value, "Timestamp": stamp}
                for name, value in (
                    ("GroupInServiceInstances", in_service),
                    ("GroupDesiredCapacity", extra.get("desired", in_service)),
                    ("GroupMaxSize", max_size),
                )
            ],
        )

    def records(self) -> dict[str, dict[str, Any]]:
        listed = boto3.client("route53").list_resource_record_sets(HostedZoneId=self.zone_id)
        return {
            record["SetIdentifier"]: record
            for record in listed["ResourceRecordSets"]
            if record["Name"] == RECORD
        }

    def weights(self) -> dict[str, int]:
        return {region: record["Weight"] for region, record in self.records().items()}

    def run(self, at: datetime = NOW) -> dict[str, Any]:
        return controller_handler.Controller(self.config).run(now=at.timestamp())

    def state(self) -> dict[str, Any]:
        value = boto3.client("ssm").get_parameter(Name=self.config.state_parameter)
        return json.loads(value["Parameter"]["Value"])


def config_document(
    zone_id: str, *, mode: str = "route53", arns: dict[str, str] | None = None
) -> dict:
    return {
        "fleet": FLEET,
        "mode": mode,
        "period_s": PERIOD_S,
        "override_parameter": parameter_names(FLEET)[0],
        "state_parameter": parameter_names(FLEET)[1],
        "metric_namespace": "Inferfleet/Traffic",
        "services": [
            {
                "name": "assistant",
                "hosted_zone_id": zone_id,
                "record_name": RECORD,
                "policy": {"step": 20, "floor": 5, "requests_per_target_per_minute": 120},
                "endpoints": [
                    {
                        "region": region,
                        "load_balancer": load_balancer(region),
                        "target_group": target_group(region),
                        "auto_scaling_groups": [f"assistant-inf2-{region}"],
                        "endpoint_group_arn": (arns or {}).get(region, ""),
                    }
                    for region in REGIONS
                ],
            }
        ],
    }


def make_world() -> TrafficWorld:
    """The zone, its three weighted records (34/33/33) and the controller's config."""
    controller_handler.client.cache_clear()
    route53 = boto3.client("route53")
    vpc = boto3.client("ec2", region_name="us-east-1").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]
    zone = route53.create_hosted_zone(
        Name="shopping.internal.",
        CallerReference="traffic-test",
        HostedZoneConfig={"PrivateZone": True, "Comment": "test"},
        VPC={"VPCRegion": "us-east-1", "VPCId": vpc["VpcId"]},
    )["HostedZone"]
    zone_id = zone["Id"].split("/")[-1]
    checks = {
        region: route53.create_health_check(
            CallerReference=f"traffic-test-{region}",
            HealthCheckConfig={
                "Type": "CLOUDWATCH_METRIC",
                "AlarmIdentifier": {"Region": region, "Name": f"assistant-{region}-unhealthy"},
                "InsufficientDataHealthStatus": "LastKnownStatus",
            },
        )["HealthCheck"]["Id"]
        for region in REGIONS
    }
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": RECORD,
                        "Type": "A",
                        "SetIdentifier": region,
                        "Weight": weight,
                        "HealthCheckId": checks[region],
                        "AliasTarget": {
                            "HostedZoneId": ALB_ZONES[region],
                            "DNSName": f"internal-shopping-assistant.{region}.elb.amazonaws.com",
                            "EvaluateTargetHealth": True,
                        },
                    },
                }
                for region, weight in zip(REGIONS, (34, 33, 33), strict=True)
            ]
        },
    )
    return TrafficWorld(
        zone_id, ControllerConfig.from_dict(config_document(zone_id)), PercentileAnswers(), checks
    )
