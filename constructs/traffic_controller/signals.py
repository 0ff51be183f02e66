"""Each region's signals for one period, read from CloudWatch with GetMetricData.

Per endpoint (one service in one region), from ``AWS/ApplicationELB``: TargetResponseTime P99
(time to first byte, which for a stream is time to first token), HealthyHostCount,
RequestCountPerTarget, target and load-balancer 5xx against RequestCount; from
``AWS/AutoScaling`` (group metrics collection on): in-service, desired and max instances of its
groups. Healthy vs desired compares registered-and-healthy targets with the instances the
groups want (one task per instance).

Plain statistics and the percentile go in separate calls: a failed or throttled percentile
read leaves TTFT unknown for the period (no evidence of a breach) instead of blinding the
controller to health and capacity too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .config import Endpoint
from .weights import RegionSignals

_log = logging.getLogger(__name__)
ALB = "AWS/ApplicationELB"
ASG = "AWS/AutoScaling"
# ALB metrics land a minute or two late: look back this many periods for the latest point.
LOOKBACK_PERIODS = 5
_MAX_QUERIES = 500


@dataclass(frozen=True)
class Query:
    id: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str

    def request(self, period_s: int) -> dict[str, Any]:
        return {
            "Id": self.id,
            "MetricStat": {
                "Metric": {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                },
                "Period": period_s,
                "Stat": self.stat,
            },
            "ReturnData": True,
        }


def endpoint_queries(prefix: str, endpoint: Endpoint) -> dict[str, list[Query]]:
    """The queries of one endpoint, by the signal they feed; ids start with ``prefix``."""
    both = (("LoadBalancer", endpoint.load_balancer), ("TargetGroup", endpoint.target_group))
    balancer = (("LoadBalancer", endpoint.load_balancer),)
    queries: dict[str, list[Query]] = {
        "ttft": [Query(f"{prefix}ttft", ALB, "TargetResponseTime", both, "p99")],
        "healthy": [Query(f"{prefix}healthy", ALB, "HealthyHostCount", both, "Minimum")],
        "per_target": [
            Query(
                f"{prefix}pertarget",
                ALB,
                "RequestCountPerTarget",
                (("TargetGroup", endpoint.target_group),),
                "Sum",
            )
        ],
        "requests": [Query(f"{prefix}requests", ALB, "RequestCount", both, "Sum")],
        "errors": [
            Query(f"{prefix}target5xx", ALB, "HTTPCode_Target_5XX_Count", both, "Sum"),
            Query(f"{prefix}elb5xx", ALB, "HTTPCode_ELB_5XX_Count", balancer, "Sum"),
        ],
    }
    for kind, metric in (
        ("in_service", "GroupInServiceInstances"),
        ("desired", "GroupDesiredCapacity"),
        ("max_size", "GroupMaxSize"),
    ):
        queries[kind] = [
            Query(
                f"{prefix}{kind.replace('_', '')}{index}",
                ASG,
                metric,
                (("AutoScalingGroupName", name),),
                "Maximum",
            )
            for index, name in enumerate(endpoint.auto_scaling_groups)
        ]
    return queries


def read_signals(
    cloudwatch: Callable[[str], Any],
    endpoints: dict[str, Endpoint],
    period_s: int,
    now: datetime,
) -> dict[str, RegionSignals]:
    """Signals per key of ``endpoints`` (any key, e.g. ``service/region``), one call set per
    region: plain statistics in one GetMetricData call, the percentile in another."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(seconds=period_s * LOOKBACK_PERIODS)
    by_region: dict[str, dict[str, dict[str, list[Query]]]] = {}
    for index, (key, endpoint) in enumerate(endpoints.items()):
        by_region.setdefault(endpoint.region, {})[key] = endpoint_queries(f"e{index}_", endpoint)
    signals = {}
    for region, keyed in by_region.items():
        client = cloudwatch(region)
        plain = [
            q
            for queries in keyed.values()
            for kind, qs in queries.items()
            if kind != "ttft"
            for q in qs
        ]
        percentile = [q for queries in keyed.values() for q in queries["ttft"]]
        values = _latest(client, plain, period_s, start, end)
        try:
            values |= _latest(client, percentile, period_s, start, end)
        except (ClientError, BotoCoreError) as error:
            _log.warning("TTFT P99 unreadable in %s this period: %s", region, error)
        for key, queries in keyed.items():
            signals[key] = _signals(queries, values, period_s)
    return signals


def _latest(
    client: Any, queries: list[Query], period_s: int, start: datetime, end: datetime
) -> dict[str, float]:
    """The latest datapoint of each query that has one."""
    found: dict[str, float] = {}
    for first in range(0, len(queries), _MAX_QUERIES):
        batch = [q.request(period_s) for q in queries[first : first + _MAX_QUERIES]]
        token = None
        while True:
            extra = {"NextToken": token} if token else {}
            page = client.get_metric_data(
                MetricDataQueries=batch,
                StartTime=start,
                EndTime=end,
                ScanBy="TimestampDescending",
                **extra,
            )
            for result in page["MetricDataResults"]:
                points = sorted(
                    zip(result.get("Timestamps", []), result.get("Values", []), strict=False),
                    reverse=True,
                )
                if points and result["Id"] not in found:
                    found[result["Id"]] = float(points[0][1])
            token = page.get("NextToken")
            if not token:
                break
    return found


def _signals(
    queries: dict[str, list[Query]], values: dict[str, float], period_s: int
) -> RegionSignals:
    def one(kind: str) -> float | None:
        return values.get(queries[kind][0].id)

    def total(kind: str) -> float | None:
        chosen = queries[kind]
        if not chosen or any(q.id not in values for q in chosen):
            return None
        return sum(values[q.id] for q in chosen)

    requests = one("requests")
    # An ALB writes no 5xx datapoint for a period without errors.
    errors = sum(values.get(q.id, 0.0) for q in queries["errors"])
    per_target = one("per_target")
    return RegionSignals(
        ttft_p99_s=one("ttft"),
        healthy_hosts=one("healthy"),
        desired_hosts=total("desired"),
        requests_per_target=None if per_target is None else per_target * 60.0 / period_s,
        error_rate=errors / requests if requests else None,
        in_service=total("in_service"),
        max_size=total("max_size"),
    )
