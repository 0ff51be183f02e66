"""What is deployed, per region: stack status, ECS task counts, target health, endpoints.

Read with AWS API calls only; the names come from the fleet file and the stack outputs.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.waiters import ServiceCount, service_counts, target_health
from inferfleet.infra import names
from inferfleet.infra.plan import FleetPlan

NOT_DEPLOYED = "NOT_DEPLOYED"


@dataclass(frozen=True)
class StackState:
    status: str
    outputs: dict[str, str]


@dataclass
class ServiceStatus:
    endpoint: str | None = None
    target_group_arn: str | None = None
    targets: dict[str, int] = field(default_factory=dict)


@dataclass
class RegionStatus:
    region: str
    stack: str
    stack_status: str
    services: dict[str, ServiceStatus] = field(default_factory=dict)
    tasks: list[ServiceCount] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stack_state(aws: AwsAccess, region: str, stack: str) -> StackState | None:
    """The stack's status and outputs; None when there is no such stack (or it was deleted)."""
    from botocore.exceptions import ClientError

    try:
        found = aws.client("cloudformation", region).describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        if "does not exist" in error.response["Error"].get("Message", ""):
            return None
        raise
    if not found or found[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    outputs = {item["OutputKey"]: item["OutputValue"] for item in found[0].get("Outputs", [])}
    return StackState(found[0]["StackStatus"], outputs)


def region_status(aws: AwsAccess, plan: FleetPlan, region: str) -> RegionStatus:
    from botocore.exceptions import BotoCoreError, ClientError

    region_plan = plan.region(region)
    stack = region_plan.stack_name
    try:
        state = stack_state(aws, region, stack)
    except (BotoCoreError, ClientError) as error:
        return RegionStatus(region, stack, "UNKNOWN", error=str(error))
    if state is None:
        return RegionStatus(region, stack, NOT_DEPLOYED)
    status = RegionStatus(region, stack, state.status)
    for service in region_plan.services:
        status.services[service.name] = ServiceStatus(
            endpoint=state.outputs.get(service.endpoint_output),
            target_group_arn=state.outputs.get(service.target_group_output),
        )
    try:
        cluster = state.outputs.get(names.CLUSTER_NAME)
        if cluster:
            status.tasks = service_counts(aws.client("ecs", region), cluster)
        elbv2 = aws.client("elbv2", region)
        for service in status.services.values():
            if service.target_group_arn:
                service.targets = target_health(elbv2, service.target_group_arn).states
    except (BotoCoreError, ClientError) as error:
        status.error = str(error)
    return status


def global_status(aws: AwsAccess, plan: FleetPlan) -> RegionStatus | None:
    """The global stack of a traffic section, with each service's name; None without one."""
    from botocore.exceptions import BotoCoreError, ClientError

    glob = plan.global_plan
    if glob is None:
        return None
    try:
        state = stack_state(aws, glob.region, glob.stack_name)
    except (BotoCoreError, ClientError) as error:
        return RegionStatus(glob.region, glob.stack_name, "UNKNOWN", error=str(error))
    if state is None:
        return RegionStatus(glob.region, glob.stack_name, NOT_DEPLOYED)
    status = RegionStatus(glob.region, glob.stack_name, state.status)
    for service in glob.props.services:
        status.services[service.name] = ServiceStatus(
            endpoint=state.outputs.get(names.traffic_record_output(service.name))
        )
    return status
