"""A fleet with a traffic section against moto: deploy puts the global stack after the region,
with the region's load balancer as its parameter; status shows it; destroy deletes it first.

The real pinned CDK CLI, one moto server for the module; the tests build on each other.
"""

import json
from pathlib import Path

import pytest
import yaml
from deploy_support import aws_client, run_inferfleet, stack_names
from fleet_documents import fleet_document, new_vpc_region
from moto_server import MotoServer

from inferfleet.cli.deploy.rollout import EMULATOR_DIFF_REASON

pytestmark = pytest.mark.slow

REGION = "us-east-1"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("global")


@pytest.fixture(scope="module")
def fleet(workspace: Path) -> Path:
    document = fleet_document("tr", [new_vpc_region(REGION)])
    document["traffic"] = {"zone": {"name": "tr.internal"}, "services": ["chat"]}
    path = workspace / "fleet.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def dry_run_diffs(moto: MotoServer, workspace: Path, fleet: Path) -> list[dict]:
    run = run_inferfleet(
        ["deploy", "--config", str(fleet), "--all", "--dry-run", "--json", "--out",
         str(workspace / "work")], moto, workspace,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return [e for e in run.events() if e["phase"] == "diff"]


def test_a_dry_run_before_any_deploy_diffs_the_global_stack_by_its_template(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    diffs = dry_run_diffs(moto_module, workspace, fleet)
    assert [(e["stack"], e["status"]) for e in diffs] == [
        ("tr-us-east-1", "succeeded"),
        ("tr-global", "succeeded"),
    ]
    glob = diffs[1]["detail"]
    assert glob["compared"].startswith("templates only: tr-global points at tr-us-east-1, which")
    assert glob["differences"] == 1 and "AWS::Route53::RecordSet" in glob["diff"]
    assert stack_names(moto_module, REGION) == []


def test_deploy_puts_the_global_stack_after_the_region(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    work = str(workspace / "work")
    boot = run_inferfleet(
        ["bootstrap", "-r", REGION, "--config", str(fleet), "--out", work], moto_module, workspace
    )
    assert boot.returncode == 0, boot.stderr
    run = run_inferfleet(
        ["deploy", "--config", str(fleet), "--all", "--json", "--out", work],
        moto_module,
        workspace,
    )
    assert run.returncode == 0, run.stderr
    deploys = [e for e in run.events() if e["phase"] == "deploy"]
    assert [(e["stack"], e["status"]) for e in deploys] == [
        ("tr-us-east-1", "succeeded"),
        ("tr-global", "succeeded"),
    ]
    assert deploys[1]["outputs"]["TrafficChatRecordName"] == "chat.tr.internal."
    assert {"tr-us-east-1", "tr-global"} <= set(stack_names(moto_module, REGION))
    # the weighted alias points at the load balancer the regional stack made
    dns = aws_client(moto_module, "elbv2", REGION).describe_load_balancers()["LoadBalancers"][0][
        "DNSName"
    ]
    route53 = aws_client(moto_module, "route53", REGION)
    [zone] = route53.list_hosted_zones()["HostedZones"]
    records = [
        r
        for r in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        if r["Type"] == "A"
    ]
    assert [(r["Name"], r["SetIdentifier"], r["Weight"]) for r in records] == [
        ("chat.tr.internal.", REGION, 100)
    ]
    assert records[0]["AliasTarget"]["DNSName"].rstrip(".") == dns.rstrip(".")
    [check] = route53.list_health_checks()["HealthChecks"]
    assert check["HealthCheckConfig"]["Type"] == "CLOUDWATCH_METRIC"


def test_a_dry_run_after_the_deploy_diffs_the_global_stack_with_its_parameters(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    diffs = dry_run_diffs(moto_module, workspace, fleet)
    glob = diffs[-1]
    assert glob["stack"] == "tr-global"
    # the parameters were read from the region's outputs; a change set would compare them
    assert glob["detail"]["compared"] == f"templates only: {EMULATOR_DIFF_REASON}"
    assert glob["detail"]["differences"] == 0, glob["detail"]["diff"]


def test_status_shows_the_global_stack(moto_module: MotoServer, workspace: Path, fleet: Path):
    run = run_inferfleet(["status", "--config", str(fleet), "--json"], moto_module, workspace)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["global"]["stack_status"] == "CREATE_COMPLETE"
    assert report["global"]["services"]["chat"]["endpoint"] == "chat.tr.internal."


def test_destroy_deletes_the_global_stack_first(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    run = run_inferfleet(
        [
            "destroy",
            "--config",
            str(fleet),
            "--all",
            "--yes",
            "--json",
            "--out",
            str(workspace / "work"),
        ],
        moto_module,
        workspace,
    )
    destroys = [(e["stack"], e["status"]) for e in run.events() if e["phase"] == "destroy"]
    assert destroys[0] == ("tr-global", "succeeded")
    assert "tr-global" not in stack_names(moto_module, REGION)
    # moto cannot delete a new VPC's NAT gateway and routes (see rollout's docstring), so the
    # region's own stack may stay; it is attempted after the global one either way
    assert destroys[1][0] == "tr-us-east-1"
