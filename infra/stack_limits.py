"""CloudFormation's per-stack limits, and how near a region's stack comes to them.

A stack over a limit synthesizes but cannot deploy, so the plan reports it at ``validate``.
The resource figure is an upper bound summed from what each construct adds; the counts were
read from synthesized templates, and tests/infra/test_stack_limits.py holds them to real
synths (never below, and close above).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inferfleet.infra.plan import RegionPlan

MAX_RESOURCES = 500
MAX_OUTPUTS = 200
MAX_PARAMETERS = 200

# The CDK gives an environment-agnostic stack two zones, whatever max_azs asks.
ENV_AGNOSTIC_ZONES = 2

# What each part adds to a regional stack.
VPC_RESOURCES = 7  # the VPC, its internet gateway and attachment, public route tables...
VPC_RESOURCES_PER_ZONE = 8  # a public and a private subnet with route tables and routes
VPC_RESOURCES_PER_NAT = 2  # an elastic IP and the NAT gateway
VPC_FLOW_LOG_RESOURCES = 1
RESTRICT_DEFAULT_SG_RESOURCES = 2  # the custom resource provider's function and role
CLUSTER_RESOURCES = 10  # cluster, capacity providers, buckets, alarm topic and key, dashboard
RESOURCES_PER_ALARM_EMAIL = 1
SERVICE_RESOURCES = 13  # load balancer, listener, groups, target group, log group, roles, alarms
HTTPS_REDIRECT_RESOURCES = 1
WEB_ACL_RESOURCES = 1
REGION_HEALTH_ALARM_RESOURCES = 1  # a service behind the traffic layer
# launch template, group, capacity provider, task, service, scaling, the instance role's agent
# and Session Manager policies
RESOURCES_PER_POOL = 16
ECR_PULL_POLICY_PER_POOL = 1  # an image asset: the execution role's ECR authorization policy
# the multi-model endpoint and the fine-tune queue, with the policies of their unscoped actions
PERSONALIZATION_RESOURCES = 60
WARM_POOL_RESOURCES = 1  # the launcher's ListTrainingJobs policy
VOLUME_KEY_RESOURCES = 1  # an endpoint on EBS-backed instances encrypts them with its own key
# model, state machine, summary function, roles, logs, two alarms, and the policies of the
# execution and state machine roles' unscoped actions
BATCH_JOB_RESOURCES = 15
BATCH_SCHEDULE_RESOURCES = 5  # schedule group, schedule, its role and policy, an alarm
# Inference components: the base component, its step policy and wake alarm, less MME's two alarms.
INFERENCE_COMPONENT_RESOURCES = 1


def resources_upper_bound(region: RegionPlan) -> int:
    """At most this many resources in the region's stack."""
    cluster = region.cluster
    count = CLUSTER_RESOURCES + RESOURCES_PER_ALARM_EMAIL * len(cluster.alarm_emails)
    if cluster.vpc is None:
        zones = len(region.availability_zones or ()) or min(cluster.max_azs, ENV_AGNOSTIC_ZONES)
        nats = zones if cluster.nat_gateways is None else min(cluster.nat_gateways, zones)
        count += (
            VPC_RESOURCES
            + VPC_RESOURCES_PER_ZONE * zones
            + VPC_RESOURCES_PER_NAT * nats
            + VPC_FLOW_LOG_RESOURCES
        )
        if cluster.restrict_default_security_group:
            count += RESTRICT_DEFAULT_SG_RESOURCES
    for service in region.services:
        props = service.props
        count += SERVICE_RESOURCES + RESOURCES_PER_POOL * len(props.pools)
        if props.image_uri is None:
            count += ECR_PULL_POLICY_PER_POOL * len(props.pools)
        count += HTTPS_REDIRECT_RESOURCES if props.certificate_arn else 0
        count += WEB_ACL_RESOURCES if props.web_acl_arn else 0
        count += REGION_HEALTH_ALARM_RESOURCES if props.alarms and props.health_alarm_name else 0
    if region.personalization is not None:
        count += PERSONALIZATION_RESOURCES
        if region.personalization.queue.warm_pool_keep_alive_s > 0:
            count += WARM_POOL_RESOURCES
        if not region.personalization.endpoint.has_instance_storage:
            count += VOLUME_KEY_RESOURCES
        if region.personalization.adapters is not None:
            count += INFERENCE_COMPONENT_RESOURCES
    for job in region.batch_jobs:
        count += BATCH_JOB_RESOURCES + (BATCH_SCHEDULE_RESOURCES if job.props.schedule else 0)
    return count


def limit_problems(region: RegionPlan) -> list[str]:
    """What keeps the region's stack from deploying, each with the fix."""
    found = []
    resources = resources_upper_bound(region)
    if resources > MAX_RESOURCES:
        found.append(
            f"the stack {region.stack_name} would hold up to {resources} resources and "
            f"CloudFormation takes at most {MAX_RESOURCES} per stack: serve fewer services or "
            "pools in this region, or move some services to a second fleet file (its own stacks)"
        )
    outputs = len(region.outputs)
    if outputs > MAX_OUTPUTS:
        found.append(
            f"the stack {region.stack_name} would have {outputs} outputs and CloudFormation "
            f"takes at most {MAX_OUTPUTS}: move some services to a second fleet file"
        )
    return found
