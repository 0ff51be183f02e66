"""init, validate and synth through the real CLI entry point."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from inferfleet.cli.main import main
from inferfleet.cli.output_folder import replace, staging_folder
from inferfleet.infra import names

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "fleet.yaml"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_init_writes_the_example_and_refuses_to_overwrite(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init")
    assert code == 0 and "wrote fleet.yaml" in out
    assert (tmp_path / "fleet.yaml").read_text() == EXAMPLE.read_text()
    code, _, err = run(capsys, "init")
    assert code == 2 and "fleet.yaml already exists; pass --force" in err
    assert run(capsys, "init", "--force")[0] == 0


def test_init_creates_missing_folders_and_writes_into_a_folder(tmp_path, capsys):
    code, out, err = run(capsys, "init", str(tmp_path / "new" / "project" / "fleet.yaml"))
    assert code == 0, err
    assert (tmp_path / "new" / "project" / "fleet.yaml").read_text() == EXAMPLE.read_text()
    code, out, _ = run(capsys, "init", str(tmp_path / "new"))
    assert code == 0 and f"wrote {tmp_path / 'new' / 'fleet.yaml'}" in out
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["fleet.yaml", "project"]


@pytest.mark.parametrize("where", ["/proc/inferfleet/fleet.yaml", "{tmp}/a-file/fleet.yaml"])
def test_init_where_it_cannot_write_is_a_clear_error(tmp_path, capsys, where):
    (tmp_path / "a-file").write_text("mine")
    code, _, err = run(capsys, "init", where.format(tmp=tmp_path))
    assert code == 2
    assert "cannot write it" in err and "Traceback" not in err
    assert (tmp_path / "a-file").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_init_never_replaces_what_is_not_a_regular_file(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = run(capsys, "init", str(fifo), "--force")
    assert code == 2 and "is not a regular file" in err
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_validate_a_folder_as_config_is_a_clear_error(tmp_path, capsys):
    code, _, err = run(capsys, "validate", "--config", str(tmp_path))
    assert code == 2
    assert f"{tmp_path}: is a directory; pass the fleet file itself" in err


def test_validate_the_example_as_json(capsys):
    code, out, _ = run(capsys, "validate", "--config", str(EXAMPLE), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["valid"] is True
    assert report["deploy_order"] == [
        "shopping-assistant-us-east-1",
        "shopping-assistant-us-west-2",
        "shopping-assistant-eu-west-1",
        "shopping-assistant-global",  # the traffic section's, after the regions it points at
    ]
    assert report["global_plan"]["region"] == "us-east-1"
    first = report["regions"][0]
    assistant = next(s for s in first["services"] if s["name"] == "assistant")
    inf2 = next(p for p in assistant["pools"] if p["instance_type"] == "inf2.48xlarge")
    assert inf2["tensor_parallel"] == 24 and inf2["replica_available_gib"] == 384
    # Defaults the plan resolved are shown, not left for the stacks to decide.
    assert assistant["props"]["idle_timeout_s"] == 600
    assert assistant["props"]["health_check_grace_period_s"] > 300
    assert first["personalization"]["queue"]["training_job_prefix"] == "shopping-assistant-ft"


def test_validate_reports_problems_without_a_traceback(tmp_path, capsys):
    bad = tmp_path / "fleet.yaml"
    bad.write_text(EXAMPLE.read_text().replace("tensor_parallel: 24", "tensor_parallel: 7"))
    (tmp_path / "cdk.context.json").write_text((REPO_ROOT / "cdk.context.json").read_text())
    code, out, err = run(capsys, "validate", "--config", str(bad))
    assert code == 2 and out == ""
    assert "error: 1 problem in" in err
    assert "services.assistant.pools[0].tensor_parallel: 7 does not divide" in err
    assert "Traceback" not in err


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run(capsys, "validate", "--config", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file; pass --config" in err


def test_synth_rejects_a_region_outside_the_spec(tmp_path, capsys):
    code, _, err = run(
        capsys, "synth", "--config", str(EXAMPLE), "--out", str(tmp_path / "o"), "-r", "ap-south-1"
    )
    assert code == 2 and "--region ap-south-1: not in" in err
    assert not (tmp_path / "o").exists()


def test_unknown_option_is_a_usage_error(capsys):
    code, _, err = run(capsys, "validate", "--bogus")
    assert code == 2 and "No such option" in err


def test_help_lists_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "inferfleet.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for command in ("init", "validate", "synth"):
        assert command in result.stdout


@pytest.fixture(scope="module")
def example_synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cdk.out"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "inferfleet"),
            "synth",
            "--config",
            str(EXAMPLE),
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    return result, out


@pytest.mark.slow
def test_synth_of_the_example_is_lint_and_nag_clean(example_synth):
    result, _ = example_synth
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["lint_errors"] == 0 and report["nag_errors"] == 0
    stacks = {s["name"]: s for s in report["stacks"]}
    assert [(s["name"], s["region"]) for s in report["stacks"]] == [
        ("shopping-assistant-us-east-1", "us-east-1"),
        ("shopping-assistant-us-west-2", "us-west-2"),
        ("shopping-assistant-eu-west-1", "eu-west-1"),
        ("shopping-assistant-global", "us-east-1"),
    ]
    assert all(s["resources"] > 50 for n, s in stacks.items() if not n.endswith("-global"))
    # zone, 6 records and health checks, controller, schedule, parameters, alarms
    assert stacks["shopping-assistant-global"]["resources"] > 20
    for stack in report["stacks"]:
        assert Path(stack["template"]).is_file()
    nag_acknowledged = [a for a in report["acknowledged"] if a["rule"].startswith("AwsSolutions-")]
    assert nag_acknowledged, "by-design findings are acknowledged, each with a reason"
    for acknowledgment in report["acknowledged"]:
        assert len(acknowledgment["reason"]) > 30


@pytest.mark.slow
def test_synth_places_trainium_only_where_it_is_offered(example_synth):
    _, out = example_synth

    def instance_types(region: str) -> set[str]:
        template = json.loads((out / f"shopping-assistant-{region}.template.json").read_text())
        return {
            r["Properties"]["LaunchTemplateData"]["InstanceType"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::EC2::LaunchTemplate"
        }

    assert instance_types("us-east-1") == {"inf2.48xlarge", "trn1.32xlarge", "inf2.xlarge"}
    assert instance_types("eu-west-1") == {"inf2.48xlarge", "inf2.xlarge"}


@pytest.mark.slow
def test_unacknowledged_nag_error_fails_synth_and_keeps_the_old_output(
    tmp_path, capsys, monkeypatch
):
    out = tmp_path / "cdk.out"
    staged = staging_folder(out, flag="--out")
    (staged / "previous.txt").write_text("kept")
    replace(out, staged, flag="--out", writer="inferfleet synth")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        EXAMPLE.read_text()
        .replace("regions: [us-east-1, us-west-2, eu-west-1]", "regions: [us-east-1]")
        .replace("regions: [us-east-1, us-west-2]}", "regions: [us-east-1]}")
    )
    (tmp_path / "cdk.context.json").write_text((REPO_ROOT / "cdk.context.json").read_text())
    # Every finding of the fleet's own constructs is acknowledged, so the gate is shown on
    # what a consumer adds next to them: a topic that accepts plain HTTP publishes is a real
    # AwsSolutions-SNS3 error.
    from aws_cdk import Stack, aws_sns

    from inferfleet.infra import app as fleet_app

    build_app = fleet_app.build_app

    def build_app_with_an_open_topic(*args, **kwargs):
        app = build_app(*args, **kwargs)
        stack = next(child for child in app.node.children if isinstance(child, Stack))
        aws_sns.Topic(stack, "ConsumerTopic", master_key=None)
        return app

    monkeypatch.setattr(fleet_app, "build_app", build_app_with_an_open_topic)
    code, out_text, err = run(capsys, "synth", "--config", str(fleet), "--out", str(out), "--json")
    assert code == 1, err
    report = json.loads(out_text)
    assert report["passed"] is False
    errors = {
        f["rule"]
        for f in report["nag"]
        if f["severity"] == "error" and "ConsumerTopic" in f["path"]
    }
    assert errors >= {"AwsSolutions-SNS3"}
    assert (out / "previous.txt").read_text() == "kept"


@pytest.mark.slow
def test_personalization_deploys_only_in_its_region(example_synth):
    _, out = example_synth

    def resource_types(region: str) -> set[str]:
        template = json.loads((out / f"shopping-assistant-{region}.template.json").read_text())
        return {r["Type"] for r in template["Resources"].values()}

    first, other = resource_types("us-east-1"), resource_types("us-west-2")
    for kind in ("AWS::SageMaker::Endpoint", "AWS::DynamoDB::Table", "AWS::Events::Rule"):
        assert kind in first and kind not in other
    template = json.loads((out / "shopping-assistant-us-east-1.template.json").read_text())
    config = next(
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SageMaker::EndpointConfig"
    )
    variant = config["ProductionVariants"][0]
    assert variant["RoutingConfig"] == {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"}
    assert variant["InstanceType"] == "ml.g5.2xlarge"
    model = next(
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SageMaker::Model"
    )
    assert model["PrimaryContainer"]["Mode"] == "MultiModel"
    assert set(template["Outputs"]) >= set(names.PERSONALIZATION_OUTPUTS)
