"""Waiting for a deployed region to serve: ECS services stable, ALB targets healthy.

botocore's own waiters do the polling (``services_stable``, ``target_in_service``); one
deadline covers both, and a timeout reports what was still missing.
"""

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from inferfleet.cli.deploy.events import StepFailed

ECS_DESCRIBE_BATCH = 10  # DescribeServices takes at most 10 services


@dataclass(frozen=True)
class ServiceCount:
    name: str
    desired: int
    running: int
    pending: int

    @property
    def settled(self) -> bool:
        return self.running == self.desired


@dataclass(frozen=True)
class TargetHealth:
    target_group_arn: str
    states: dict[str, int]
    reasons: list[str]

    @property
    def healthy(self) -> int:
        return self.states.get("healthy", 0)


class Deadline:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.end = time.monotonic() + timeout_s

    def attempts(self, delay_s: float) -> int:
        return max(1, math.ceil((self.end - time.monotonic()) / delay_s))


def service_counts(ecs: Any, cluster: str) -> list[ServiceCount]:
    arns = [
        arn
        for page in ecs.get_paginator("list_services").paginate(cluster=cluster)
        for arn in page["serviceArns"]
    ]
    counts = []
    for start in range(0, len(arns), ECS_DESCRIBE_BATCH):
        batch = arns[start : start + ECS_DESCRIBE_BATCH]
        for service in ecs.describe_services(cluster=cluster, services=batch)["services"]:
            counts.append(
                ServiceCount(
                    name=service["serviceName"],
                    desired=service["desiredCount"],
                    running=service["runningCount"],
                    pending=service.get("pendingCount", 0),
                )
            )
    return counts


def target_health(elbv2: Any, target_group_arn: str) -> TargetHealth:
    descriptions = elbv2.describe_target_health(TargetGroupArn=target_group_arn)[
        "TargetHealthDescriptions"
    ]
    states: dict[str, int] = {}
    reasons = []
    for description in descriptions:
        health = description["TargetHealth"]
        states[health["State"]] = states.get(health["State"], 0) + 1
        if "Reason" in health:
            reasons.append(f"{description['Target']['Id']}: {health['Reason']}")
    return TargetHealth(target_group_arn, states, reasons)


def wait_services_stable(
    ecs: Any, cluster: str, deadline: Deadline, *, delay_s: float = 15
) -> list[ServiceCount]:
    """Every ECS service of ``cluster`` runs its desired count in a single deployment."""
    from botocore.exceptions import WaiterError

    counts = service_counts(ecs, cluster)
    if not counts:
        raise StepFailed(f"cluster {cluster} has no ECS services; check the stack's resources")
    waiter = ecs.get_waiter("services_stable")
    names = [count.name for count in counts]
    try:
        for start in range(0, len(names), ECS_DESCRIBE_BATCH):
            waiter.wait(
                cluster=cluster,
                services=names[start : start + ECS_DESCRIBE_BATCH],
                WaiterConfig={"Delay": delay_s, "MaxAttempts": deadline.attempts(delay_s)},
            )
    except WaiterError:
        unsettled = [
            f"{c.name} runs {c.running} of {c.desired} tasks ({c.pending} pending)"
            for c in service_counts(ecs, cluster)
            if not c.settled
        ] or ["a deployment is still in progress"]
        raise StepFailed(
            f"ECS services not stable within {deadline.timeout_s:.0f} s: "
            + "; ".join(unsettled)
            + f". See the service events (aws ecs describe-services --cluster {cluster}) "
            "or raise --wait-timeout"
        ) from None
    return service_counts(ecs, cluster)


def wait_targets_healthy(
    elbv2: Any, target_group_arns: list[str], deadline: Deadline, *, delay_s: float = 15
) -> list[TargetHealth]:
    """Every target group has targets, all of them healthy."""
    from botocore.exceptions import WaiterError

    waiter = elbv2.get_waiter("target_in_service")
    for arn in target_group_arns:
        try:
            waiter.wait(
                TargetGroupArn=arn,
                WaiterConfig={"Delay": delay_s, "MaxAttempts": deadline.attempts(delay_s)},
            )
        except WaiterError:
            health = target_health(elbv2, arn)
            seen = ", ".join(f"{n} {state}" for state, n in health.states.items()) or "no targets"
            reasons = f" ({'; '.join(health.reasons[:3])})" if health.reasons else ""
            raise StepFailed(
                f"targets of {arn} not healthy within {deadline.timeout_s:.0f} s: {seen}"
                f"{reasons}. Check the health check path and the container logs, or raise "
                "--wait-timeout"
            ) from None
    return [target_health(elbv2, arn) for arn in target_group_arns]


def as_detail(counts: list[ServiceCount], health: list[TargetHealth]) -> dict[str, Any]:
    return {
        "services": [asdict(count) for count in counts],
        "targets": [asdict(item) for item in health],
    }
