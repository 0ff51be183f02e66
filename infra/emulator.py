"""Emulator mode: the one profile that fits a fleet plan to an AWS emulator (moto's server).

``inferfleet deploy --endpoint-url`` builds the plan with ``emulator=True`` (the app's
``inferfleet:emulator`` context), and :func:`emulated` changes exactly this, through props,
and nothing else:

- the Lambda-backed custom resource that strips the new VPC's default security group
  (``restrict_default_security_group``), with its provider function and role: the emulator
  runs no Lambda code, so the stack would wait for the resource forever;
- the tags on the alarm topic's KMS key: moto fails creating a tagged key from a template;
- what reads a target group's ``TargetGroupFullName`` attribute, which moto cannot resolve:
  each service's three CloudWatch alarms, its request-count scaling policies, and the
  cluster's dashboard;
- image publishing: a service that would build the built-in image (a Docker image asset,
  which needs a Docker engine and a registry) gets the placeholder image
  :data:`PLACEHOLDER_IMAGE` instead; the emulator starts no tasks, so nothing pulls it;
- the ``personalization`` section (SageMaker endpoint and fine-tune queue): moto knows no
  ``ml.*`` instance types for endpoints, does not implement inference components at all (the
  base component of ``hosting: inference_components``, and the adapter components the
  publisher makes), and the queue's upload trigger is a Lambda-backed custom resource. The
  fine-tune handlers are tested against moto directly, the adapter lifecycle with botocore's
  Stubber;
- the ``batch_jobs``: moto's CloudFormation has no EventBridge Scheduler resources and its
  Lambda refuses the public Powertools layer of the summary function, and moto runs no
  transform jobs. ``inferfleet batch`` and the summary function are tested against moto's
  Step Functions and S3 directly;
- in the global stack (a ``traffic`` section), the traffic controller — its function, role,
  log group, schedule and error alarm: moto refuses a function with the public Powertools
  layer, which it does not hold. The records keep their even split; the controller's
  handler is tested against moto directly. The regional health alarms go with the other
  target-group alarms, so the health checks follow alarms that do not exist there.
  ``global_accelerator`` mode cannot be emulated at all (moto has no Global Accelerator).
  The global stack's SSM parameters go untagged: moto fails reading their tags (a map in
  CloudFormation) from a template.
"""

from __future__ import annotations

from dataclasses import replace

from inferfleet.infra.plan import GlobalPlan, PersonalizationPlan, RegionPlan, ServicePlan

PLACEHOLDER_IMAGE = "public.ecr.aws/docker/library/busybox:stable"
UNTAGGED_RESOURCE_TYPES = ("AWS::KMS::Key",)
# moto reads an SSM parameter's tags from a template as a list; CloudFormation writes a map.
UNTAGGED_GLOBAL_RESOURCE_TYPES = ("AWS::SSM::Parameter",)


def emulated(region: RegionPlan) -> RegionPlan:
    left_out = [
        "the VPC default-security-group custom resource",
        "KMS key tags",
        "target-group alarms, request-count scaling and the dashboard",
    ]
    services = tuple(_emulated_service(service, left_out) for service in region.services)
    if region.personalization is not None:
        left_out.append(_personalization_left_out(region.personalization))
    if region.batch_jobs:
        left_out.append("the batch jobs (transform jobs, their schedules and summaries)")
    return replace(
        region,
        cluster=replace(region.cluster, restrict_default_security_group=False, dashboard=False),
        services=services,
        personalization=None,
        batch_jobs=(),
        untagged_resource_types=UNTAGGED_RESOURCE_TYPES,
        left_out=tuple(left_out),
    )


def _personalization_left_out(personalization: PersonalizationPlan) -> str:
    if personalization.adapters is None:
        return "the personalization section (multi-model endpoint, fine-tune queue)"
    return (
        "the personalization section (endpoint, base-model and adapter inference components: "
        "moto implements no inference components; fine-tune queue)"
    )


def _emulated_service(service: ServicePlan, left_out: list[str]) -> ServicePlan:
    props = replace(
        service.props, alarms=False, request_count_scaling=False, dashboard_widgets=False
    )
    if props.image_uri is None and props.image_asset_path is None:
        props = replace(props, image_uri=PLACEHOLDER_IMAGE)
        left_out.append(f"{service.name}: the built-in image (placeholder {PLACEHOLDER_IMAGE})")
    return replace(service, props=props)


def emulated_global(plan: GlobalPlan) -> GlobalPlan:
    return replace(
        plan,
        props=replace(plan.props, controller=False),
        untagged_resource_types=UNTAGGED_GLOBAL_RESOURCE_TYPES,
        left_out=(
            "the traffic controller (function, role, log group, schedule, error alarm)",
            "SSM parameter tags",
        ),
    )
