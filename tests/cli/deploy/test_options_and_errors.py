"""Option validation and the errors that say what to run, through the real entry point."""

import os
from pathlib import Path

import pytest
from fleet_documents import new_vpc_region, write_fleet

from inferfleet.cli.aws import AwsAccess
from inferfleet.cli.deploy.rollout import RolloutResult, rollout_regions
from inferfleet.cli.errors import UserError
from inferfleet.cli.main import main
from inferfleet.infra.plan import load_fleet_plan

REGIONS = ["us-east-1", "us-west-2", "eu-west-1"]


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return write_fleet(tmp_path / "fleet.yaml", "options", [new_vpc_region(r) for r in REGIONS])


def _exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return int(exited.value.code or 0), capsys.readouterr().err


def test_regions_roll_out_in_the_plans_order(fleet: Path):
    spec = load_fleet_plan(fleet)
    assert rollout_regions(spec, None, source="f") == REGIONS
    assert rollout_regions(spec, ["eu-west-1", "us-east-1"], source="f") == [
        "us-east-1",
        "eu-west-1",
    ]
    with pytest.raises(UserError, match="--region ap-south-1: not in f; use some of us-east-1"):
        rollout_regions(spec, ["ap-south-1"], source="f")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy"], "--region: say which regions to deploy: --region R (repeatable) or --all"),
        (["deploy", "--all", "-r", "us-east-1"], "--all and --region: give one"),
        (["destroy"], "--region: say which regions to destroy"),
        (["deploy", "-r", "mars-north-1"], "--region mars-north-1: not in"),
        (["destroy", "--all"], "--yes: destroy asks for confirmation"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, fleet: Path, capsys: pytest.CaptureFixture[str]
):
    code, err = _exit([*argv, "--config", str(fleet)], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_bootstrap_refuses_what_is_not_a_region_name(capsys: pytest.CaptureFixture[str]):
    code, err = _exit(["bootstrap", "--region", "us-east"], capsys)
    assert code == 2
    assert "--region 'us-east': not a region name; use one like us-east-1" in err


def test_a_wait_timeout_below_one_second_is_refused(
    fleet: Path, capsys: pytest.CaptureFixture[str]
):
    code, err = _exit(["deploy", "--all", "--config", str(fleet), "--wait-timeout", "0"], capsys)
    assert code == 2
    assert "--wait-timeout" in err


def test_missing_credentials_say_how_to_configure_them(
    fleet: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Nothing may leave the machine even if a credential turned up: a closed local port.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:9")

    argv = ["deploy", "--all", "--config", str(fleet), "--out", str(tmp_path / "out")]
    code, err = _exit([*argv, "--endpoint-url", "http://localhost:9"], capsys)

    assert code == 1
    assert "stopped before any region in step credentials" in err
    assert "no AWS credentials found; run `aws configure`, set AWS_PROFILE" in err


def test_an_endpoint_in_the_environment_alone_does_not_switch_to_emulator_mode(
    fleet: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:9")
    code, err = _exit(["status", "--config", str(fleet)], capsys)
    assert code == 2
    assert "pass --endpoint-url http://localhost:9 to use that emulator, or unset" in err


def test_an_unknown_profile_names_the_flag(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    with pytest.raises(UserError, match="--profile no-such-profile: no such profile"):
        AwsAccess(profile="no-such-profile").session  # noqa: B018 - the session is the check


def test_a_failed_rollout_names_region_step_and_what_was_left():
    result = RolloutResult(
        "deploy",
        completed=["us-east-1"],
        untouched=["eu-west-1"],
        failed_region="us-west-2",
        failed_phase="wait",
        message="ECS services not stable within 60 s",
    )
    assert result.summary() == (
        "deploy stopped at us-west-2 in step wait: ECS services not stable within 60 s. "
        "Completed: us-east-1; untouched: eu-west-1"
    )


@pytest.fixture
def nothing_leaves(monkeypatch: pytest.MonkeyPatch) -> str:
    """Any AWS call goes to a closed local port, so a check that did not stop a command
    shows up as a credentials failure rather than reaching AWS."""
    closed = "http://localhost:9"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return closed


@pytest.mark.parametrize("command", [["deploy", "--all"], ["destroy", "--all", "--yes"]])
def test_a_work_folder_of_the_users_is_refused_and_left_alone(
    fleet: Path,
    tmp_path: Path,
    nothing_leaves: str,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
):
    mine = tmp_path / "project"
    (mine / "logs").mkdir(parents=True)
    (mine / "logs" / "deploy-us-east-1.log").write_text("my notes")
    argv = [*command, "--config", str(fleet), "--out", str(mine), "--endpoint-url", nothing_leaves]

    code, err = _exit(argv, capsys)

    assert code == 2
    assert f"--out {mine}: the folder was not written by inferfleet deploy" in err
    assert (mine / "logs" / "deploy-us-east-1.log").read_text() == "my notes"
    assert sorted(p.name for p in mine.iterdir()) == ["logs"]


def test_bootstrap_refuses_a_file_as_work_folder(
    tmp_path: Path, nothing_leaves: str, capsys: pytest.CaptureFixture[str]
):
    (tmp_path / "out").write_text("mine")
    argv = ["bootstrap", "-r", "us-east-1", "--out", str(tmp_path / "out")]
    code, err = _exit([*argv, "--endpoint-url", nothing_leaves], capsys)
    assert code == 2
    assert "is a file, not a folder" in err
    assert (tmp_path / "out").read_text() == "mine"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["deploy", "--all", "--wait-timeout", "inf"], "--wait-timeout"),
        (["deploy", "--all", "--wait-timeout", "nan"], "--wait-timeout"),
        (["status", "--endpoint-url", ""], "--endpoint-url '': not a URL"),
        (["status", "--endpoint-url", "localhost:5000"], "give the emulator's address"),
        (["bootstrap", "--region", ""], "--region '': not a region name"),
    ],
)
def test_odd_flag_values_are_refused(
    argv: list[str], message: str, fleet: Path, capsys: pytest.CaptureFixture[str]
):
    code, err = _exit([*argv, "--config", str(fleet)], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_the_global_stack_deploys_after_every_region_and_is_destroyed_first(tmp_path: Path):
    from inferfleet.cli.deploy.events import EventStream
    from inferfleet.cli.deploy.rollout import Rollout

    example = Path(__file__).resolve().parents[3] / "fleet.yaml"
    plan = load_fleet_plan(example)
    rollout = Rollout(
        plan,
        config=example,
        aws=AwsAccess(),
        cdk=None,  # type: ignore[arg-type]  # units() runs no CLI
        workdir=tmp_path,
        events=EventStream([]),
    )
    glob = plan.global_plan.stack_name
    assert rollout.units("deploy", REGIONS) == [*REGIONS, glob]
    assert rollout.units("destroy", REGIONS) == [glob, *reversed(REGIONS)]
    # some regions only: the global stack still points at the others, so it is left alone
    assert rollout.units("deploy", ["us-west-2"]) == ["us-west-2"]
    assert rollout.units("destroy", ["us-west-2", "eu-west-1"]) == ["eu-west-1", "us-west-2"]
    assert rollout.units("diff", REGIONS) == [*REGIONS, glob]  # a dry run shows what deploy does
    assert rollout.units("diff", ["us-west-2"]) == ["us-west-2"]
