"""``bench --config fleet.yaml --service NAME [--region R]``: the target from the fleet itself.

The fleet plan names the region's stack and the service's pools; the stack's
CloudFormation outputs (keys from :mod:`inferfleet.infra.names`) give the URL and the
target group, or the SageMaker endpoint of the personalization section; with ``--scale``,
the cluster, ECS service and Auto Scaling group of the service's one pool in the region.
The instance count is the plan's ``min`` per pool (what serves without load) and the
price per hour the shipped on-demand table's, averaged over the pools' instances. A flag
given explicitly wins over what the fleet says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inferfleet.cli.errors import UserError

# ``--service personalization``: the multi-model endpoint of the personalization section.
PERSONALIZATION = "personalization"


def resolve_fleet_target(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (bench flags by field name) with the fleet's target filled in."""
    config, service = values.get("config"), values.get("service")
    if config is None:
        if service is not None:
            raise UserError("--service: names a service of a fleet file; add --config FILE")
        return values
    for flag, field in (("--local", "local"), ("--target", "target")):
        if values.get(field):
            raise UserError(
                f"{flag}: --config resolves the target from the fleet's stack; drop {flag}"
            )
    from inferfleet.cli.commands.fleet import load_plan
    from inferfleet.infra import names

    plan = load_plan(Path(config))
    region = values.get("region") or plan.regions[0].region
    if region not in plan.region_names:
        raise UserError(
            f"--region {region}: {config} deploys to {', '.join(plan.region_names)}; "
            "use one of those"
        )
    region_plan = plan.region(region)
    choices = [s.name for s in region_plan.services]
    if region_plan.personalization is not None:
        choices.append(PERSONALIZATION)
    if service is None:
        if len(choices) != 1:
            raise UserError(
                f"--service: {config} serves {', '.join(choices)} in {region}; name one, "
                f"e.g. --service {choices[0]}"
            )
        service = choices[0]
    if service not in choices:
        raise UserError(
            f"--service {service}: {config} serves {', '.join(choices)} in {region}; "
            "use one of those (or another --region)"
        )

    from inferfleet.cli.aws import AwsAccess
    from inferfleet.cli.finetune.stack_outputs import StackTarget, require, stack_outputs

    stack = StackTarget(stack_name=region_plan.stack_name, region=region, aws=AwsAccess())
    outputs = stack_outputs(stack)
    resolved: dict[str, Any] = {"region": region, "service": service}
    if service == PERSONALIZATION:
        if values.get("api") not in (None, "sagemaker"):
            raise UserError(
                f"--api {values['api']}: the personalization endpoint is a SageMaker endpoint; "
                "drop --api (or give --api sagemaker)"
            )
        endpoint = region_plan.personalization.endpoint  # type: ignore[union-attr]
        resolved |= {
            "api": "sagemaker",
            "target": require(outputs, names.PERSONALIZATION_ENDPOINT_NAME, stack, PERSONALIZATION),
            "instances": endpoint.min_capacity,
        }
        price = _prices(region, [(endpoint.instance_type, endpoint.min_capacity)])
    else:
        plan_service = region_plan.service(service)
        url_key, group_key = names.service_outputs(service)
        what = f"the service {service}"
        resolved |= {
            "target": require(outputs, url_key, stack, what),
            "target_group_arn": require(outputs, group_key, stack, what),
            "instances": sum(pool.min_instances for pool in plan_service.pools),
        }
        if values.get("scale") and not values.get("ecs_service"):
            resolved |= _scaled_pool(outputs, stack, service, plan_service.props.pools)
        if values.get("api") is None and plan_service.props.kind == "classifier":
            resolved["api"] = "classify"
        elif values.get("api") is None and plan_service.props.protocol == "grpc":
            resolved["api"] = "triton-grpc"
        price = _prices(region, [(p.instance_type, p.min_instances) for p in plan_service.pools])
    if price is not None:
        resolved["price_per_hour"] = price
    return {**resolved, **{key: value for key, value in values.items() if value is not None}}


def _scaled_pool(outputs: dict[str, str], stack, service: str, pools) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """--scale on the service's one pool: its cluster, ECS service and Auto Scaling group."""
    from inferfleet.cli.finetune.stack_outputs import require
    from inferfleet.infra import names

    if len(pools) != 1:
        kinds = ", ".join(pool.instance_type for pool in pools)
        raise UserError(
            f"--scale: {service} runs {len(pools)} pools in {stack.region} ({kinds}) and bench "
            "resizes one; give --ecs-cluster, --ecs-service and --asg-name of the pool to "
            f"resize (the stack's outputs {names.CLUSTER_NAME} and {service}...EcsService / "
            "...AutoScalingGroup)"
        )
    ecs_key, asg_key = names.pool_outputs(service, pools[0].instance_type)
    what = f"the pool outputs of {service} (deploy this version)"
    return {
        "ecs_cluster": require(outputs, names.CLUSTER_NAME, stack, "its cluster"),
        "ecs_service": require(outputs, ecs_key, stack, what),
        "asg_name": require(outputs, asg_key, stack, what),
    }


def _prices(region: str, pools: list[tuple[str, int]]) -> float | None:
    """Mean on-demand price of one of the pools' instances, or None if one is not priced."""
    from inferfleet.cli.sizing.prices import PriceLookup, load_prices

    lookup = PriceLookup(load_prices())
    hourly = [(lookup(region, instance_type), count) for instance_type, count in pools]
    instances = sum(count for _, count in hourly)
    if not instances or any(price is None for price, _ in hourly):
        return None
    return round(sum(price * count for price, count in hourly) / instances, 4)  # type: ignore[operator]
