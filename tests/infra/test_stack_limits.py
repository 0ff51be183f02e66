"""CloudFormation's per-stack limits: the plan's resource bound against real synths, and
validate refusing a stack that could not deploy."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferfleet.cli.main import main
from inferfleet.cli.synth import use_bundled_node
from inferfleet.infra.plan import FleetPlan, build_plan, draft_plan, load_fleet_plan
from inferfleet.infra.spec import FleetSpec
from inferfleet.infra.stack_limits import MAX_RESOURCES

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ZONES = [f"{REGION}a", f"{REGION}b"]
CERTIFICATE = f"arn:aws:acm:{REGION}:123456789012:certificate/0f9e8d7c-aaaa-bbbb-cccc-123456789abc"
IMAGE = "public.ecr.aws/example/server:1"
ECR = "111122223333.dkr.ecr.us-east-1.amazonaws.com"


def pool(instance_type: str = "inf2.xlarge", tensor_parallel: int = 1) -> dict[str, Any]:
    return {"instance_type": instance_type, "tensor_parallel": tensor_parallel, "min": 0, "max": 2}


def service(kind: str = "classifier", pools: list[dict[str, Any]] | None = None) -> dict:
    return {
        "kind": kind,
        "model": {"parameters_b": 0.1},
        "pools": pools or [pool()],
        "container": {"image": IMAGE},
    }


BASE = {"name": "ab", "regions": [{"name": REGION, "availability_zones": ZONES}]}
VARIANTS: dict[str, dict[str, Any]] = {
    "two zones, a NAT each": {},
    "three zones": {"regions": [{"name": REGION, "availability_zones": [*ZONES, "us-east-1c"]}]},
    "environment-agnostic": {"regions": [{"name": REGION}]},
    "one NAT": {"network": {"nat_gateways": 1}},
    "imported VPC": {
        "regions": [
            {
                "name": REGION,
                "vpc": {
                    "vpc_id": "vpc-0abc12345def67890",
                    "cidr": "10.1.0.0/16",
                    "availability_zones": ZONES,
                    "private_subnet_ids": ["subnet-0aaa11111", "subnet-0aaa22222"],
                },
            }
        ]
    },
    "alarm e-mails": {"alarm_emails": ["a@example.com", "b@example.com"]},
    "HTTPS": {
        "regions": [{"name": REGION, "availability_zones": ZONES, "certificate_arn": CERTIFICATE}]
    },
    "three services": {"services": {"aa": service(), "bb": service("llm"), "cc": service()}},
    "three pools": {
        "services": {
            "aa": service(pools=[pool(), pool("inf2.24xlarge", 4), pool("trn1.2xlarge", 2)])
        }
    },
    "batch jobs": {
        "batch_jobs": [
            {
                "name": "dupes",
                "model_artifact": "s3://models-bucket/pair/model.tar.gz",
                "input_prefix": "s3://data-bucket/pairs/",
                "output_prefix": "s3://data-bucket/scores/",
                "schedule": "rate(7 days)",
            },
            {
                "name": "manual",
                "model_artifact": "s3://models-bucket/pair/model.tar.gz",
                "input_prefix": "s3://data-bucket/other/",
                "output_prefix": "s3://data-bucket/other-scores/",
                "image_uri": f"{ECR}/pair:1",
            },
        ]
    },
    "inference components": {
        "personalization": {
            "endpoint": {
                "hosting": "inference_components",
                "instance_type": "ml.g5.2xlarge",
                "base_model": {"parameters_b": 1.0},
            },
            "queue": {"training_image_uri": f"{ECR}/ft:1"},
        }
    },
    "two batch jobs, one scheduled": {
        "batch_jobs": [
            {
                "name": name,
                "model_artifact": "s3://models-bucket/pair/model.tar.gz",
                "input_prefix": f"s3://data-bucket/{name}/in/",
                "output_prefix": f"s3://data-bucket/{name}/out/",
                **({"schedule": "rate(7 days)"} if name == "dupes" else {}),
            }
            for name in ("dupes", "other")
        ]
    },
    "built-in images": {"services": {"chat": service() | {"container": {}}}},
    "personalization": {
        "personalization": {
            "endpoint": {"image_uri": f"{ECR}/mme:1"},
            "queue": {"training_image_uri": f"{ECR}/ft:1", "batch_threshold": 8},
        }
    },
}


def planned(document: dict[str, Any]) -> FleetPlan:
    return build_plan(FleetSpec.model_validate({"services": {"chat": service()}} | document))


def synthesized_resources(plan: FleetPlan, outdir: Path) -> dict[str, int]:
    from inferfleet.infra.app import build_app

    use_bundled_node()
    assembly = build_app(plan, outdir=str(outdir), nag=False).synth()
    return {stack.stack_name: len(stack.template["Resources"]) for stack in assembly.stacks}


@pytest.mark.slow
def test_the_bound_is_never_below_a_real_synth_and_close_above(tmp_path: Path) -> None:
    plans = {name: planned(BASE | copy.deepcopy(change)) for name, change in VARIANTS.items()}
    plans["the example"] = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    for name, plan in plans.items():
        actual = synthesized_resources(plan, tmp_path / name.replace(" ", "-"))
        for region in plan.regions:
            bound = region.resources_upper_bound
            real = actual[region.stack_name]
            assert real <= bound <= real + max(2, real // 50), (name, region.region, real, bound)


def test_validate_refuses_a_stack_over_500_resources_with_the_count_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = BASE | {"services": {f"s{i}": service() for i in range(20)}}
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--config", str(fleet)])
    err = capsys.readouterr().err
    bound = draft_plan(FleetSpec.model_validate(document))[0].regions[0].resources_upper_bound
    assert bound > MAX_RESOURCES
    assert exited.value.code == 2
    assert f"{fleet}:3: regions[0]: the stack ab-us-east-1" in err
    assert f"would hold up to {bound} resources" in err
    assert "at most 500 per stack" in err and "second fleet file" in err


def test_validate_shows_each_stack_against_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--config", str(REPO_ROOT / "fleet.yaml"), "--json"])
    assert exited.value.code == 0
    shown = json.loads(capsys.readouterr().out)
    plan = load_fleet_plan(REPO_ROOT / "fleet.yaml")
    assert [r["resources_upper_bound"] for r in shown["regions"]] == [
        region.resources_upper_bound for region in plan.regions
    ]
