"""bootstrap, deploy, status and destroy end to end: the real pinned CDK CLI against moto.

One moto server serves the whole module; the tests build on each other in file order
(bootstrap, then deploy, then status ...), as a person would run the commands.
"""

from pathlib import Path

import pytest
from deploy_support import aws_client, run_inferfleet, stack_names
from fleet_documents import ACCOUNT, new_vpc_region, write_fleet
from moto_server import MotoServer

from inferfleet.infra import names

pytestmark = pytest.mark.slow

REGIONS = ["us-east-1", "us-west-2"]
PER_REGION_PHASES = ["preflight", "deploy", "wait", "smoke"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rollout")


@pytest.fixture(scope="module")
def fleet(workspace: Path) -> Path:
    return write_fleet(
        workspace / "fleet.yaml", "rollout-test", [new_vpc_region(r) for r in REGIONS]
    )


def test_bootstrap_creates_the_toolkit_stack_in_each_region(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    run = run_inferfleet(
        ["bootstrap", "-r", "us-east-1", "-r", "us-west-2", "--config", str(fleet), "--json"],
        moto_module,
        workspace,
    )

    assert run.returncode == 0, run.stderr
    events = run.events()
    assert [(e["phase"], e["region"], e["status"]) for e in events] == [
        ("credentials", None, "succeeded"),
        ("bootstrap", "us-east-1", "succeeded"),
        ("bootstrap", "us-west-2", "succeeded"),
        ("summary", None, "succeeded"),
    ]
    assert events[0]["detail"]["account"] == ACCOUNT
    for region in REGIONS:
        assert "CDKToolkit" in stack_names(moto_module, region)
        parameter = aws_client(moto_module, "ssm", region).get_parameter(
            Name="/cdk-bootstrap/hnb659fds/version"
        )
        assert int(parameter["Parameter"]["Value"]) > 0


def test_deploy_rolls_out_canary_first_and_reports_every_step(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    run = run_inferfleet(
        ["deploy", "--config", str(fleet), "--all", "--json", "--out", str(workspace / "work")],
        moto_module,
        workspace,
    )

    assert run.returncode == 0, run.stderr
    events = run.events()
    assert [(e["phase"], e["region"]) for e in events] == [
        ("credentials", None),
        ("synth", None),
        ("preflight", None),
        *[(phase, region) for region in REGIONS for phase in PER_REGION_PHASES],
        ("summary", None),
    ]
    for event in events:
        assert set(event) >= {"region", "stack", "phase", "status", "duration_s", "outputs"}
        assert event["duration_s"] >= 0
    by_step = {(e["phase"], e["region"]): e for e in events}
    assert by_step[("preflight", None)]["status"] == "skipped"  # no images to publish there
    for region in REGIONS:
        stack = f"rollout-test-{region}"
        assert by_step[("deploy", region)]["status"] == "succeeded"
        assert by_step[("deploy", region)]["stack"] == stack
        for phase in ("wait", "smoke"):  # an emulator has no instances to wait for
            assert by_step[(phase, region)]["status"] == "skipped"
            assert "emulator" in by_step[(phase, region)]["message"]
        described = aws_client(moto_module, "cloudformation", region).describe_stacks(
            StackName=stack
        )["Stacks"][0]
        assert described["StackStatus"] == "CREATE_COMPLETE"
        assert by_step[("deploy", region)]["outputs"] == {
            o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]
        }
    assert set(by_step[("deploy", "us-east-1")]["outputs"]) == {
        names.service_endpoint("chat"),
        names.service_target_group_arn("chat"),
        *names.pool_outputs("chat", "inf2.xlarge"),
        names.CLUSTER_NAME,
    }
    created = {
        region: aws_client(moto_module, "cloudformation", region).describe_stacks(
            StackName=f"rollout-test-{region}"
        )["Stacks"][0]["CreationTime"]
        for region in REGIONS
    }
    assert created["us-east-1"] < created["us-west-2"]
    assert by_step[("summary", None)]["detail"]["completed"] == REGIONS


def test_status_reports_stack_tasks_targets_and_endpoints(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    import json

    run = run_inferfleet(
        ["status", "--config", str(fleet), "--json"],
        moto_module,
        workspace,
    )

    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert [r["region"] for r in report["regions"]] == REGIONS
    for region in report["regions"]:
        outputs = json.loads(
            (workspace / "work" / "outputs" / f"{region['region']}.json").read_text()
        )[f"rollout-test-{region['region']}"]
        assert region["stack_status"] == "CREATE_COMPLETE"
        assert region["services"]["chat"]["endpoint"] == outputs["ChatEndpoint"]
        assert region["services"]["chat"]["target_group_arn"] == outputs["ChatTargetGroupArn"]
        assert region["services"]["chat"]["targets"] == {}  # moto registers no tasks
        assert [(t["desired"], t["running"]) for t in region["tasks"]] == [(1, 0)]


def test_dry_run_shows_the_diff_and_changes_nothing(
    moto_module: MotoServer, workspace: Path, fleet: Path
):
    run = run_inferfleet(
        ["deploy", "--config", str(fleet), "-r", "us-west-2", "--dry-run", "--json"],
        moto_module,
        workspace,
    )

    assert run.returncode == 0, run.stderr
    events = run.events()
    assert [(e["phase"], e["region"]) for e in events] == [
        ("credentials", None),
        ("synth", None),
        ("diff", "us-west-2"),
        ("summary", None),
    ]
    assert events[2]["detail"]["differences"] == 0
    assert "rollout-test-us-west-2" in events[2]["detail"]["diff"]
    described = aws_client(moto_module, "cloudformation", "us-west-2").describe_stacks(
        StackName="rollout-test-us-west-2"
    )["Stacks"][0]
    assert "LastUpdatedTime" not in described


def test_rollout_stops_at_the_first_failing_region_and_leaves_the_rest(
    moto_module: MotoServer, workspace: Path
):
    # eu-west-1 was never bootstrapped; us-west-2 was, but comes after the failure.
    regions = ["us-east-1", "eu-west-1", "us-west-2"]
    fleet = write_fleet(
        workspace / "canary.yaml", "canary-test", [new_vpc_region(r) for r in regions]
    )
    moto_module.restart_recording()

    run = run_inferfleet(
        ["deploy", "--config", str(fleet), "--all", "--json", "--no-wait"],
        moto_module,
        workspace,
    )

    assert run.returncode == 1
    assert "stopped at eu-west-1 in step preflight" in run.stderr
    assert "inferfleet bootstrap --region eu-west-1" in run.stderr
    events = run.events()
    assert [(e["phase"], e["region"], e["status"]) for e in events[-3:]] == [
        ("smoke", "us-east-1", "skipped"),
        ("preflight", "eu-west-1", "failed"),
        ("summary", None, "failed"),
    ]
    summary = events[-1]["detail"]
    assert summary["completed"] == ["us-east-1"]
    assert summary["failed_region"] == "eu-west-1"
    assert summary["untouched"] == ["us-west-2"]
    cloudformation_calls = [
        entry["headers"].get("Authorization", "")
        for entry in moto_module.recorded_requests()
        if "/cloudformation/" in entry["headers"].get("Authorization", "")
    ]
    assert any("/us-east-1/" in call for call in cloudformation_calls)
    assert not [c for c in cloudformation_calls if "/eu-west-1/" in c or "/us-west-2/" in c]
    assert "canary-test-us-east-1" in stack_names(moto_module, "us-east-1")
    assert stack_names(moto_module, "eu-west-1") == []
    assert "canary-test-us-west-2" not in stack_names(moto_module, "us-west-2")


def test_destroy_deletes_the_stacks_in_reverse_order(moto_module: MotoServer, workspace: Path):
    # moto deletes no NAT gateway, internet gateway, route or flow log of a stack, so a
    # stack with a new VPC cannot be deleted there; this fleet imports VPCs instead.
    regions = []
    for region in REGIONS:
        ec2 = aws_client(moto_module, "ec2", region)
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        zones = [f"{region}a", f"{region}b"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=zone)[
                "Subnet"
            ]["SubnetId"]
            for i, zone in enumerate(zones)
        ]
        vpc_spec = {
            "vpc_id": vpc,
            "cidr": "10.20.0.0/16",
            "availability_zones": zones,
            "private_subnet_ids": subnets,
        }
        regions.append({"name": region, "vpc": vpc_spec})
    document = write_fleet(workspace / "imported.yaml", "imported-vpc", regions)
    common = ["--config", str(document), "--all", "--json", "--out", str(workspace / "imported")]
    deployed = run_inferfleet(["deploy", *common], moto_module, workspace)
    assert deployed.returncode == 0, deployed.stderr
    for region in REGIONS:
        assert f"imported-vpc-{region}" in stack_names(moto_module, region)

    run = run_inferfleet(["destroy", *common, "--yes"], moto_module, workspace)

    assert run.returncode == 0, run.stderr
    assert [(e["phase"], e["region"], e["status"]) for e in run.events()] == [
        ("credentials", None, "succeeded"),
        ("synth", None, "succeeded"),
        ("destroy", "us-west-2", "succeeded"),
        ("destroy", "us-east-1", "succeeded"),
        ("summary", None, "succeeded"),
    ]
    for region in REGIONS:
        names = stack_names(moto_module, region)
        assert f"imported-vpc-{region}" not in names
        assert f"rollout-test-{region}" in names  # another fleet's stacks stay
