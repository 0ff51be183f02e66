"""`validate` and `synth` agree: what the plan accepts builds, what a construct refuses the plan
refused first, naming the field.

Fleets are generated around the edges the constructs and CDK care about (tensor-parallel
degrees, capacities, health-check timings, timeouts, CIDRs, certificates in other regions,
imported VPCs without public subnets, image sources, fine-tune batching, long fleet names).
Each is planned; an accepted one must build and synthesize; one with a problem that a
construct enforces must fail to build with that construct's error, and never with anything
else.

200 fleets by default (about 40 s here on an idle machine: nine in ten reach the app, about
half of them build and synthesize, the others are refused by a construct); set
INFERFLEET_PROPERTY_EXAMPLES for a deeper run.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from inferfleet.cli.synth import use_bundled_node
from inferfleet.constructs.props.problems import PropsError
from inferfleet.infra.plan import FleetPlan, draft_plan
from inferfleet.infra.regional_stack import SynthesisError
from inferfleet.infra.spec import FleetSpec

pytestmark = pytest.mark.slow

REGION = "us-east-1"
CERTIFICATE = "arn:aws:acm:{region}:123456789012:certificate/0f9e8d7c-aaaa-bbbb-cccc-123456789abc"
ZONES = [f"{REGION}a", f"{REGION}b"]
OUTCOMES: Counter[str] = Counter()


def imported_vpc(public: bool) -> dict[str, Any]:
    return {
        "vpc_id": "vpc-0abc12345def67890",
        "cidr": "10.1.0.0/16",
        "availability_zones": ZONES,
        "private_subnet_ids": ["subnet-0aaa11111", "subnet-0aaa22222"],
        "public_subnet_ids": ["subnet-0bbb11111", "subnet-0bbb22222"] if public else [],
    }


# Valid choices, combined freely: what the plan accepts must build.
pools = st.sampled_from(
    [
        {"instance_type": "inf2.xlarge", "tensor_parallel": 1, "min": 1, "max": 2},
        {"instance_type": "inf2.xlarge", "tensor_parallel": 2, "min": 0, "max": 1},
        {"instance_type": "inf2.24xlarge", "tensor_parallel": 4, "min": 0, "max": 3},
        {"instance_type": "trn1.2xlarge", "tensor_parallel": 2, "min": 1, "max": 1},
    ]
)
services = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["llm", "classifier"]),
        "model": st.fixed_dictionaries(
            {"parameters_b": st.sampled_from([0.1, 1.0])},
            optional={"artifact": st.just("s3://models-bucket/chat/")},
        ),
        "pools": st.lists(pools, min_size=1, max_size=2, unique_by=lambda p: p["instance_type"]),
        "container": st.sampled_from(
            [
                {"image": "public.ecr.aws/example/server:1"},
                {"image": "public.ecr.aws/example/server:1", "environment": {"A": "1"}},
            ]
        ),
    },
    optional={
        "health_check": st.fixed_dictionaries(
            {},
            optional={
                "interval_s": st.sampled_from([10, 30]),
                "timeout_s": st.sampled_from([2, 5]),
                "grace_period_s": st.sampled_from([0, 600]),
            },
        ),
        "stream_idle_timeout_s": st.sampled_from([60, 4000]),
        "deregistration_delay_s": st.sampled_from([0, 3600]),
        "routing": st.sampled_from(["least_outstanding_requests", "random", "weighted_random"]),
        "protocol": st.sampled_from(["http", "grpc"]),
        "autoscaling": st.fixed_dictionaries(
            {}, optional={"requests_per_target_per_minute": st.sampled_from([1, 50])}
        ),
    },
)
multi_model_endpoints = st.fixed_dictionaries(
    {"image_uri": st.just("111122223333.dkr.ecr.us-east-1.amazonaws.com/mme:1")},
    optional={
        "instance_type": st.sampled_from(["ml.g5.2xlarge", "ml.c5.xlarge"]),
        "min": st.just(1),
        "max": st.integers(1, 3),
        "routing": st.sampled_from(["random", "least_outstanding_requests"]),
    },
)
component_endpoints = st.fixed_dictionaries(
    {
        "hosting": st.just("inference_components"),
        "image_uri": st.just("111122223333.dkr.ecr.us-east-1.amazonaws.com/lmi:1"),
        "base_model": st.fixed_dictionaries({"parameters_b": st.sampled_from([1.0, 8.0])}),
    },
    optional={
        "instance_type": st.sampled_from(["ml.inf2.xlarge", "ml.g5.12xlarge"]),
        "min": st.sampled_from([0, 1]),
        "max": st.integers(1, 3),
        "accelerators_per_copy": st.sampled_from([1, 2]),
    },
)
personalizations = st.fixed_dictionaries(
    {
        "endpoint": st.one_of(multi_model_endpoints, component_endpoints),
        "queue": st.fixed_dictionaries(
            {"training_image_uri": st.just("111122223333.dkr.ecr.us-east-1.amazonaws.com/ft:1")},
            optional={
                "batch_threshold": st.sampled_from([0, 8, 400]),
                "batch_tasks": st.sampled_from([2, 8]),
                "batch_instances": st.sampled_from([1, 2]),
            },
        ),
    }
)
batch_jobs = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.just("dupes"),
            "model_artifact": st.just("s3://models-bucket/pair/model.tar.gz"),
            "input_prefix": st.just("s3://data-bucket/pairs/"),
            "output_prefix": st.sampled_from(["s3://data-bucket/scores/", "s3://other-bucket/"]),
        },
        optional={
            "instance_type": st.sampled_from(["ml.inf2.xlarge", "ml.trn1.32xlarge"]),
            "instance_count": st.integers(1, 3),
            "schedule": st.sampled_from(["rate(7 days)", "cron(0 3 ? * MON *)"]),
            "image_uri": st.just("111122223333.dkr.ecr.us-east-1.amazonaws.com/pair:1"),
        },
    ),
    min_size=1,
    max_size=1,
)
regions = st.sampled_from(
    [
        [{"name": REGION, "vpc": imported_vpc(public=True)}],
        [{"name": REGION, "vpc": imported_vpc(public=False)}],
        [
            {
                "name": REGION,
                "vpc": imported_vpc(public=True),
                "certificate_arn": CERTIFICATE.format(region=REGION),
            }
        ],
        [{"name": REGION, "availability_zones": ZONES}],
    ]
)
clean_fleets = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["ab", "chat", "abcdefghijklmnopqrstuvwxyzabcd"]),
        "regions": regions,
        "services": st.dictionaries(
            st.sampled_from(["chat", "intent"]), services, min_size=1, max_size=2
        ),
        "network": st.fixed_dictionaries(
            {},
            optional={
                "internet_facing": st.booleans(),
                "allowed_cidrs": st.just(["10.0.0.0/8"]),
                "nat_gateways": st.just(1),
            },
        ),
    },
    optional={
        "personalization": personalizations,
        "batch_jobs": batch_jobs,
        "traffic": st.fixed_dictionaries(
            {
                "zone": st.sampled_from([{"name": "fleet.internal"}, {"name": "shop.example.com"}]),
                "services": st.sampled_from([["chat"], {"intent": {"record": "q"}}]),
            },
            optional={
                "step": st.sampled_from([10, 50]),
                "record_ttl_s": st.sampled_from([0, 300]),
                "period_s": st.sampled_from([60, 120]),
            },
        ),
    },
)


def _first_service(document: dict[str, Any]) -> dict[str, Any]:
    return next(iter(document["services"].values()))


def _set(path: str, value: Any):  # type: ignore[no-untyped-def]
    """A fault: set ``path`` (dots; ``*`` is the first service, ``0`` the first item)."""

    def apply(document: dict[str, Any]) -> None:
        target: Any = document
        *parents, leaf = path.split(".")
        for index, part in enumerate(parents):
            if part == "*":
                target = _first_service(document)
            elif part.isdigit():
                target = target[int(part)]
            else:
                # a missing list gets one empty item, as a missing mapping is made empty
                below = ([*parents, leaf])[index + 1]
                target = target.setdefault(part, [{}] if below.isdigit() else {})
        target[leaf] = value

    apply.__name__ = f"{path}={value!r}"
    return apply


# Faults a construct or CDK refuses (and one class only the plan sees: memory, zones).
FAULTS = [
    _set("*.pools.0.tensor_parallel", 3),
    _set("*.pools.0.tensor_parallel", 0),
    _set("*.pools.0.instance_type", "g5.xlarge"),
    _set("*.pools.0.min", 5),
    _set("*.pools.0.max", 0),
    _set("*.health_check.timeout_s", 40),
    _set("*.health_check.healthy_threshold", 1),
    _set("*.health_check.path", "health"),
    _set("*.protocol", "grpc"),
    _set("*.health_check.grace_period_s", 20000),
    _set("*.stream_idle_timeout_s", 0),
    _set("*.deregistration_delay_s", 3601),
    _set("*.container.port", 70000),
    _set("*.container.asset_path", "image"),
    _set("*.container.environment", {"INFERFLEET_SERVICE_KIND": "llm"}),
    _set("*.autoscaling.requests_per_target_per_minute", 0),
    _set("*.model.parameters_b", 400.0),
    _set("network.allowed_cidrs", ["10.0.0.1/8"]),
    _set("network.internet_facing", True),
    _set("regions.0.certificate_arn", CERTIFICATE.format(region="eu-west-1")),
    _set("regions.0.availability_zones", ["us-east-1a", "us-east-1a"]),
    _set("personalization.endpoint.instance_type", "ml.inf2.xlarge"),
    _set("personalization.endpoint.routing", "round_robin"),
    _set("personalization.endpoint.min", 3),
    _set("personalization.endpoint.hosting", "inference_components"),
    _set("personalization.endpoint.base_model", {"parameters_b": 400.0}),
    _set("personalization.endpoint.accelerators_per_copy", 3),
    _set("personalization.queue.batch_tasks", 200),
    _set("personalization.queue.batch_instances", 10),
    _set("personalization.queue.create_calls_per_second", 20.0),
    _set("personalization.queue.max_running_jobs", 0),
    _set("tags", {"aws:owner": "me"}),
    _set("batch_jobs.0.instance_type", "inf2.xlarge"),
    _set("batch_jobs.0.schedule", "rate(7 day)"),
    _set("batch_jobs.0.output_prefix", "s3://data-bucket/pairs/scores/"),
    _set("batch_jobs.0.name", "duplicate-pairs-weekly"),
    _set("traffic.step", 2),
    _set("traffic.period_s", 90),
    _set("traffic.record_ttl_s", 4000),
    _set("traffic.zone.name", "-bad-"),
    _set("traffic.mode", "global_accelerator"),
]


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(draw(clean_fleets))  # sampled values are shared objects
    if "personalization" in document:
        event(f"hosting {document['personalization']['endpoint'].get('hosting', 'multi_model')}")
    for fault in draw(st.lists(st.sampled_from(FAULTS), max_size=2)):
        fault(document)
        event(f"fault {fault.__name__}")
    return document


def _construct_problems(plan: FleetPlan) -> list[str]:
    """What the constructs themselves will refuse, asked of the props in the plan."""
    found = []
    for region in plan.regions:
        found += [p.message for p in region.cluster.problems()]
        for service in region.services:
            found += [
                p.message
                for p in service.props.problems(
                    region=region.region, public_subnets=region.cluster.has_public_subnets
                )
            ]
        if region.personalization:
            found += [p.message for p in region.personalization.endpoint.problems()]
            found += [p.message for p in region.personalization.queue.problems()]
            if region.personalization.adapters is not None:
                found += [p.message for p in region.personalization.adapters.problems()]
        for job in region.batch_jobs:
            found += [p.message for p in job.props.problems()]
    if plan.global_plan is not None:
        found += [p.message for p in plan.global_plan.props.problems()]
    return found


@settings(
    max_examples=int(os.environ.get("INFERFLEET_PROPERTY_EXAMPLES", "200")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=fleets())
def test_what_validate_accepts_builds_and_what_a_construct_refuses_validate_refused(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from inferfleet.infra.app import build_app

    use_bundled_node()
    try:
        spec = FleetSpec.model_validate(document)
    except ValueError:
        OUTCOMES["schema"] += 1
        event("refused by the schema")
        return
    plan, problems = draft_plan(spec)
    refused_by_constructs = _construct_problems(plan)
    # Every rule a construct enforces is one the plan reports.
    assert set(refused_by_constructs) <= {p.message for p in problems}
    if problems and not refused_by_constructs:
        OUTCOMES["fleet rules"] += 1
        event("refused by a rule no construct sees (deploy-time limit)")
        return
    outdir = tmp_path_factory.mktemp("synth")
    try:
        assembly = build_app(plan, outdir=str(outdir), nag=False).synth()
    except (PropsError, SynthesisError) as error:
        assert problems, f"the plan accepted a fleet the app refused: {error}"
        assert str(error).startswith(tuple(f"{stack}/" for stack in plan.stacks))
        OUTCOMES["refused by both"] += 1
        event("refused by validate and by the constructs")
        return
    assert not problems, f"the app built a fleet validate refused: {problems}"
    for region in plan.regions:
        resources = assembly.get_stack_by_name(region.stack_name).template["Resources"]
        assert len(resources) <= region.resources_upper_bound, region.region
    OUTCOMES["accepted and built"] += 1
    event("accepted and built")


def test_the_generated_fleets_cover_both_verdicts() -> None:
    """Runs after the property test (file order): both verdicts were exercised."""
    if not OUTCOMES:
        pytest.skip("the property test did not run in this session")
    assert OUTCOMES["accepted and built"] >= 10, OUTCOMES
    assert OUTCOMES["refused by both"] >= 10, OUTCOMES
