"""Faults during a deploy, with the real pinned CDK CLI against moto: Ctrl-C, no Docker."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from deploy_support import INFERFLEET, cli_environment, run_inferfleet
from fleet_documents import fleet_document, new_vpc_region, write_fleet
from moto_server import MotoServer
from processes import descendants, kill_if_unchanged, process_alive

pytestmark = pytest.mark.slow

REGION = "us-east-1"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, moto_module: MotoServer) -> Path:
    """A folder whose region is bootstrapped in the module's moto."""
    folder = tmp_path_factory.mktemp("faults")
    bootstrap = ["bootstrap", "-r", REGION, "--out", str(folder / "work")]
    run = run_inferfleet(bootstrap, moto_module, folder)
    assert run.returncode == 0, run.stderr
    return folder


def test_ctrl_c_to_deploy_alone_stops_cdk_deploy_and_keeps_the_previous_outputs(
    moto_module: MotoServer, workspace: Path
):
    fleet = write_fleet(workspace / "fleet.yaml", "faults", [new_vpc_region(REGION)])
    work = workspace / "work"
    common = ["deploy", "--config", str(fleet), "--all", "--json", "--no-wait", "--out", str(work)]
    first = run_inferfleet(common, moto_module, workspace)
    assert first.returncode == 0, first.stderr
    outputs = work / "outputs" / f"{REGION}.json"
    previous = outputs.read_text()
    assert "ChatEndpoint" in previous

    document = yaml.safe_load(fleet.read_text())
    document["services"]["chat"]["pools"][0]["max"] = 3
    fleet.write_text(yaml.safe_dump(document, sort_keys=False))
    deploy = subprocess.Popen(
        [str(INFERFLEET), *common, "--endpoint-url", moto_module.url],
        cwd=workspace,
        env=cli_environment(moto_module),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: dict[int, str] = {}
    try:
        started = _wait_for_descendant(deploy.pid, "cdk deploy", timeout_s=300)
        time.sleep(1)

        os.kill(deploy.pid, signal.SIGINT)  # the deploy process alone, not its group

        stdout, stderr = deploy.communicate(timeout=120)
        assert deploy.returncode == 130, stderr
        assert not [pid for pid in started if process_alive(pid)], "cdk deploy was left running"
        last = json.loads(stdout.splitlines()[-1])
        assert (last["phase"], last["region"], last["status"]) == ("deploy", REGION, "failed")
        assert "interrupted" in last["message"]
        assert outputs.read_text() == previous
        assert "Traceback" not in stderr
    finally:
        deploy.kill()
        deploy.wait()
        kill_if_unchanged(started)


def test_image_assets_without_docker_stop_at_preflight_before_any_region(
    moto_module: MotoServer, workspace: Path
):
    document = fleet_document("needs-docker", [new_vpc_region(REGION)])
    del document["services"]["chat"]["container"]  # the built-in image: an asset to build
    fleet = workspace / "needs-docker.yaml"
    fleet.write_text(yaml.safe_dump(document, sort_keys=False))
    # Not emulator mode: only STS goes to moto; anything else meets a closed proxy port.
    env = cli_environment(moto_module)
    del env["AWS_ENDPOINT_URL"]
    env |= {
        "AWS_ENDPOINT_URL_STS": moto_module.url,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "localhost,127.0.0.1",
        "DOCKER_HOST": f"unix://{workspace}/no-docker.sock",
    }
    moto_module.restart_recording()

    result = subprocess.run(
        [str(INFERFLEET), "deploy", "--config", str(fleet), "--all", "--json",
         "--out", str(workspace / "docker-work")],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["phase"], e["region"], e["status"]) for e in events] == [
        ("credentials", None, "succeeded"),
        ("synth", None, "succeeded"),
        ("preflight", None, "failed"),
        ("summary", None, "failed"),
    ]
    message = events[2]["message"]
    assert "no Docker engine answers" in message and "chat/" in message
    assert "services.<name>.container.image" in message and "where Docker runs" in message
    assert "stopped before any region in step preflight" in result.stderr
    targets = {entry["headers"].get("Host") for entry in moto_module.recorded_requests()}
    actions = {entry["body"].split("&")[0] for entry in moto_module.recorded_requests()}
    assert actions == {"Action=GetCallerIdentity"}, (targets, actions)


def _wait_for_descendant(root: int, text: str, timeout_s: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = descendants(root)
        if any(text in command for command in found.values()):
            return found
        assert time.monotonic() < deadline, f"no {text!r} below {root}"
        time.sleep(0.1)
