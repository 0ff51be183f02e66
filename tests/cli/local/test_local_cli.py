"""``inferfleet local up|status|down`` through the installed command, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import process_alive

pytestmark = pytest.mark.slow

INFERFLEET = shutil.which("inferfleet", path=str(Path(sys.executable).parent)) or "inferfleet"


def inferfleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [INFERFLEET, "local", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "state"
    yield directory
    # Never leave a fleet behind, even when an assertion failed half-way.
    inferfleet("down", "--state-dir", str(directory))


def test_up_status_down_leaves_no_process_behind(state_dir: Path) -> None:
    up = inferfleet("up", "--servers", "3", "--routing", "random", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    assert "emulated" in up.stdout

    status = inferfleet("status", "--json", "--state-dir", str(state_dir))
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["running"], report["emulated"]) == (True, True)
    assert (report["servers"], report["routing"], report["mode"]) == (3, "random", "continuous")
    assert [i["instance"] for i in report["instances"]] == [
        "emulator-0",
        "emulator-1",
        "emulator-2",
    ]
    with urllib.request.urlopen(f"{report['url']}/v1/models", timeout=10) as response:
        assert response.headers["X-Inferfleet-Routing"] == "random"
        assert json.loads(response.read())["data"][0]["emulated"] is True
    pids = [report["pid"], report["nginx_pid"]]
    assert all(process_alive(pid) for pid in pids)

    human = inferfleet("status", "--state-dir", str(state_dir))
    assert human.returncode == 0
    assert report["url"] in human.stdout and "emulator-2" in human.stdout

    again = inferfleet("up", "--state-dir", str(state_dir))
    assert again.returncode == 1
    assert "already running" in again.stderr and "inferfleet local down" in again.stderr
    assert "Traceback" not in again.stderr

    down = inferfleet("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert not any(process_alive(pid) for pid in pids)
    assert not (state_dir / "state.json").exists()
    assert not (state_dir / "run").exists()

    after = inferfleet("status", "--json", "--state-dir", str(state_dir))
    assert after.returncode == 1
    assert json.loads(after.stdout)["running"] is False


def test_up_with_grpc_serves_a_grpc_front_that_bench_reads(state_dir: Path, tmp_path: Path) -> None:
    up = inferfleet("up", "--servers", "2", "--protocol", "grpc", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    status = json.loads(inferfleet("status", "--json", "--state-dir", str(state_dir)).stdout)
    assert (status["protocol"], status["url"] != status["grpc_url"]) == ("grpc", True)
    assert f"gRPC front: {status['grpc_url']}" in up.stdout
    bench = subprocess.run(
        [INFERFLEET, "bench", "--api", "triton-grpc", "--target", status["grpc_url"],
         "--users", "2", "--requests", "8", "--warmup", "0", "--output-tokens", "4",
         "--max-loop-lag-ms", "1000", "--max-dispatch-lag-ms", "1000",
         "--out", str(tmp_path / "bench")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stdout + bench.stderr
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert results["target"]["emulated"] is True
    step = results["steps"][0]
    assert (step["succeeded"], step["output_tokens"]) == (8, 8 * 4)
    assert {row["instance"] for row in step["per_instance"]} <= {"emulator-0", "emulator-1"}
    assert sum(row["requests"] for row in step["per_instance"]) == 8


def test_up_after_a_crash_replaces_the_stale_state(state_dir: Path) -> None:
    first = inferfleet("up", "--servers", "1", "--json", "--state-dir", str(state_dir))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    os.killpg(report["pid"], 9)
    deadline = time.monotonic() + 5
    while process_alive(report["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)

    second = inferfleet("up", "--servers", "1", "--json", "--state-dir", str(state_dir))
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["pid"] != report["pid"]


@pytest.mark.parametrize(
    ("args", "env", "message", "code"),
    [
        (["--servers", "0"], {}, "--servers: Input should be greater than or equal to 1", 2),
        (["--mode", "dynamic"], {}, "--mode: Input should be 'continuous' or 'static'", 2),
        (["--routing", "fastest"], {}, "--routing: 'fastest' is not a routing policy; use one", 2),
        (["--port", "70000"], {}, "--port: Input should be less than or equal to 65535", 2),
        (["--protocol", "quic"], {}, "--protocol: Input should be 'http' or 'grpc'", 2),
        (["--protocol", "grpc", "--regions", "2"], {}, "--protocol: --regions rehearses HTTP", 2),
        (["--server-profile", "/nonexistent/profile.json"], {}, "--server-profile: cannot read", 2),
        ([], {"INFERFLEET_NGINX": "/nonexistent/nginx"}, "apt-get install nginx", 1),
    ],
)
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(
    state_dir: Path, args: list[str], env: dict[str, str], message: str, code: int
) -> None:
    result = inferfleet("up", *args, "--state-dir", str(state_dir), env=env)

    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (state_dir / "state.json").exists()


def test_bad_profile_file_names_the_field(state_dir: Path, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"slots": -1}))

    result = inferfleet("up", "--server-profile", str(profile), "--state-dir", str(state_dir))

    assert result.returncode == 2
    assert f"--server-profile {profile}: slots:" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_fleets_racing_for_one_port_end_with_one_up_and_one_failure(tmp_path: Path) -> None:
    port = _free_port()
    dirs = [tmp_path / "first", tmp_path / "second"]
    try:
        command = [INFERFLEET, "local", "up", "--servers", "1", "--port", str(port), "--json"]
        racers = [
            subprocess.Popen(
                [*command, "--state-dir", str(directory)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for directory in dirs
        ]
        results = [(racer.wait(timeout=60), *racer.communicate()) for racer in racers]
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 2], results
        (winner,) = [json.loads(out) for code, out, _ in results if code == 0]
        (loser,) = [err for code, _, err in results if code != 0]
        assert f"port: 127.0.0.1:{port} is already in use" in loser
        assert "Traceback" not in loser
        # The fleet that said it is up is the one answering on the port.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__inferfleet/nginx") as answer:
            served = json.loads(answer.read())
        state = next(
            json.loads((d / "state.json").read_text()) for d in dirs if (d / "state.json").exists()
        )
        assert state["host"]["pid"] == winner["pid"]
        assert served["token"] == state["host"]["nginx_token"]
        statuses = [inferfleet("status", "--json", "--state-dir", str(d)) for d in dirs]
        assert sorted(json.loads(s.stdout)["running"] for s in statuses) == [False, True]
    finally:
        for directory in dirs:
            inferfleet("down", "--state-dir", str(directory))


@pytest.mark.parametrize("command", ["up", "down"])
def test_a_state_dir_of_the_users_is_refused_and_left_alone(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "project"
    (folder / "run").mkdir(parents=True)
    (folder / "run" / "results.csv").write_text("mine")
    (folder / "lock").write_text("my lock notes")

    result = inferfleet(command, "--state-dir", str(folder))

    assert result.returncode == 2
    assert f"--state-dir {folder}: the folder was not written by inferfleet local" in result.stderr
    assert "Traceback" not in result.stderr
    assert (folder / "run" / "results.csv").read_text() == "mine"
    assert (folder / "lock").read_text() == "my lock notes"
    assert sorted(p.name for p in folder.iterdir()) == ["lock", "run"]


def test_a_file_as_state_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("mine")
    result = inferfleet("up", "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert "is a file, not a folder" in result.stderr
    assert (tmp_path / "state").read_text() == "mine"


def test_down_with_nothing_running_is_harmless(state_dir: Path) -> None:
    result = inferfleet("down", "--state-dir", str(state_dir))

    assert result.returncode == 0
    assert "nothing to stop" in result.stdout
