"""Finding the pinned CDK CLI and reading its output."""

import json
from pathlib import Path

import pytest

from inferfleet.cli.deploy.cdk_cli import (
    CdkCli,
    CdkRun,
    resource_progress,
    stacks_with_differences,
)
from inferfleet.cli.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[3]


def _project(root: Path, pin: str, installed: str | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({"devDependencies": {"aws-cdk": pin}}))
    if installed is not None:
        package = root / "node_modules" / "aws-cdk"
        package.mkdir(parents=True)
        (package / "package.json").write_text(json.dumps({"version": installed}))
        (root / "node_modules" / ".bin").mkdir()
        (root / "node_modules" / ".bin" / "cdk").write_text("")
    return root


def test_the_repository_pin_is_found_from_a_subfolder():
    cdk = CdkCli.locate(REPO_ROOT / "infra")
    pin = json.loads((REPO_ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert cdk.executable == REPO_ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk.version == pin


def test_a_missing_install_says_to_run_npm_ci(tmp_path: Path):
    project = _project(tmp_path / "fleet", "2.1148.1", installed=None)
    with pytest.raises(UserError, match=r"not installed; run `npm ci` in .*fleet") as error:
        CdkCli.locate(project / "configs")
    assert error.value.exit_code == 1


def test_an_install_that_differs_from_the_pin_says_to_run_npm_ci(tmp_path: Path):
    project = _project(tmp_path / "fleet", "2.1148.1", installed="3.0.0")
    with pytest.raises(UserError, match=r"holds aws-cdk 3.0.0 but package.json pins 2.1148.1"):
        CdkCli.locate(project)


def test_a_caret_pin_accepts_the_same_minor_version(tmp_path: Path):
    project = _project(tmp_path / "fleet", "^2.1148.0", installed="2.1148.7")
    assert CdkCli.locate(project).version == "2.1148.7"


def test_the_environment_points_the_cli_at_the_emulator_and_profile(tmp_path: Path):
    cdk = CdkCli.locate(REPO_ROOT, endpoint_url="http://localhost:4566", profile="ci")
    assert cdk.environment["AWS_ENDPOINT_URL"] == "http://localhost:4566"
    assert cdk.environment["AWS_PROFILE"] == "ci"
    assert cdk.environment["CDK_DISABLE_CLI_TELEMETRY"] == "true"


def test_resource_progress_is_read_from_stack_activity_lines():
    line = "fleet-us-east-1 |  12/57 | 11:39:12 AM | CREATE_COMPLETE | AWS::EC2::VPC | Vpc"
    assert resource_progress(line) == (12, 57)
    assert resource_progress("fleet-us-east-1: creating CloudFormation changeset...") is None


def test_the_failure_summary_is_the_clis_own_account():
    output = (
        "fleet-us-east-1: deploying... [1/1]\n"
        "❌  fleet-us-east-1 failed: ValidationError: Template format error\n"
        "    at deployStack\n"
        "more detail\n"
        "even more\n"
    )
    run = CdkRun(["deploy"], 1, output, Path("deploy.log"))
    summary = run.error_summary()
    assert summary.startswith("❌  fleet-us-east-1 failed: ValidationError")
    assert "even more" not in summary
    assert CdkRun(["deploy"], 1, "", Path("x")).error_summary() == "exit code 1"


def test_the_failure_summary_says_a_repeated_message_once():
    output = (
        "❌  fleet-us-west-2: destroy failed DeploymentError: The vpc vpc-1 has dependencies\n"
        "The vpc vpc-1 has dependencies\n"
    )
    summary = CdkRun(["destroy"], 1, output, Path("x")).error_summary()
    assert summary.count("The vpc vpc-1 has dependencies") == 1


def test_the_number_of_stacks_with_differences_is_read_from_diff_output():
    assert stacks_with_differences("\n✨  Number of stacks with differences: 2\n") == 2
    assert stacks_with_differences("no summary") is None
