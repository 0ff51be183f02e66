"""Failed runs never pass: real servers, real faults (killed mid-step, streams cut, errors).

Each run goes through the real ``inferfleet`` entry point in a subprocess, as a
user or CI would run it, and its exit code, summary line and results are read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from inferfleet.cli.local import nginx
from inferfleet.cli.local.host import free_port

INFERFLEET = str(Path(sys.executable).with_name("inferfleet"))
SERVER = Path(__file__).with_name("timed_server.py")
FAILED_STEP_EXIT = 3


@contextmanager
def server_process(*options: str) -> Iterator[tuple[subprocess.Popen, str]]:
    process = subprocess.Popen([sys.executable, str(SERVER), *options], stdout=subprocess.PIPE,
                               text=True)  # fmt: skip
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("PORT "), line
        yield process, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.kill()
        process.wait()


@contextmanager
def nginx_in_front_of(url: str) -> Iterator[str]:
    """A real nginx (the local fleet's config) proxying to ``url``."""
    prefix = Path(tempfile.mkdtemp(prefix="bench-faults-nginx-"))
    paths = nginx.NginxPaths(prefix)
    paths.create()
    config = nginx.NginxConfig(
        listen_port=free_port(), upstream_ports=(int(url.rsplit(":", 1)[1]),),
        routing="least_outstanding_requests",
    )  # fmt: skip
    nginx.write_config(config, paths)
    process = nginx.start(nginx.find_nginx(), paths)
    try:
        nginx.wait_serving(config, timeout_s=20, process=process, paths=paths)
        yield f"http://127.0.0.1:{config.listen_port}"
    finally:
        nginx.stop(process)


def bench(target: str, out: Path, *args: str, kill: subprocess.Popen | None = None) -> tuple:
    """Run bench; with ``kill``, kill that server a second into the measured step."""
    command = [INFERFLEET, "bench", "--target", target, "--out", str(out), "--warmup", "0",
               "--output-tokens", "8", *args]  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill is not None:
        deadline = time.monotonic() + 30
        while not (out / "results.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        kill.kill()
    _, stderr = run.communicate(timeout=120)
    results = json.loads((out / "results.json").read_text())
    return run.returncode, stderr, results


def test_a_server_killed_mid_step_fails_the_run(tmp_path: Path) -> None:
    with server_process("--ttft-ms", "5", "--itl-ms", "2") as (server, url):
        code, stderr, results = bench(url, tmp_path / "o", "--users", "4", "--duration", "3",
                                      kill=server)  # fmt: skip
    [step] = results["steps"]
    assert code == FAILED_STEP_EXIT, stderr
    assert step["succeeded"] > 0 and step["errors"] > 0
    assert set(step["errors_by_kind"]) <= {"connect", "disconnected"}
    assert set(step["errors_by_class"]) <= {"connection", "cut_stream"}
    assert sum(step["errors_by_class"].values()) == step["errors"]
    assert step["failed"] is True and step["valid"] is False
    assert f"{step['errors']:,} of {step['requests']:,} requests failed" in stderr
    assert "over --max-error-rate 0" in step["invalid_reasons"][0]
    assert "Traceback" not in stderr


def test_a_server_killed_behind_nginx_fails_the_run_with_502s(tmp_path: Path) -> None:
    with (
        server_process("--ttft-ms", "5", "--itl-ms", "2") as (server, url),
        nginx_in_front_of(url) as front,
    ):
        code, stderr, results = bench(front, tmp_path / "o", "--users", "8", "--duration", "3",
                                      kill=server)  # fmt: skip
    [step] = results["steps"]
    assert code == FAILED_STEP_EXIT, stderr
    # nginx answers for the dead server: most requests come back as HTTP 502 at once.
    assert step["errors_by_kind"].get("http_502", 0) > step["succeeded"]
    assert step["errors_by_class"]["http"] == step["errors_by_kind"]["http_502"]
    assert step["failed"] is True
    assert "requests failed" in step["invalid_reasons"][0]


def arrivals(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_arrivals") as response:
        return int(json.load(response)["arrivals"])


def test_streams_cut_mid_way_fail_the_run(tmp_path: Path) -> None:
    with server_process("--ttft-ms", "5", "--itl-ms", "2", "--cut-after", "3") as (_, url):
        code, stderr, results = bench(url, tmp_path / "o", "--users", "3", "--duration", "1")
        reached = arrivals(url)
    [step] = results["steps"]
    assert code == FAILED_STEP_EXIT, stderr
    assert step["succeeded"] == 0 and step["errors"] == step["requests"] > 0
    # Each answer began, then its connection dropped: a cut stream, never resent.
    assert step["errors_by_class"] == {"cut_stream": step["errors"]}
    assert results["load"]["retries"] == 0
    assert reached == 1 + step["requests"] + step["warmup_requests"]  # 1: the preflight
    report = (tmp_path / "o" / "report.md").read_text()
    assert f"cut_stream {step['errors']}" in report and "never retried" in report
    assert step["invalid_reasons"][0].startswith(f"no request succeeded: all {step['requests']}")
    assert f"{step['errors']:,} of {step['requests']:,} requests failed" in stderr


@pytest.mark.parametrize(("max_error_rate", "code"), [(None, FAILED_STEP_EXIT), ("0.5", 0)])
def test_the_error_rate_threshold_decides(
    timed_server, tmp_path: Path, max_error_rate: str | None, code: int
) -> None:
    # Every third request is answered with HTTP 503: a third of the step fails.
    url = timed_server(ttft_ms=5, itl_ms=2, fail_every=3)
    extra = ("--max-error-rate", max_error_rate) if max_error_rate else ()
    exit_code, stderr, results = bench(url, tmp_path / "o", "--users", "2", "--requests", "30",
                                       *extra)  # fmt: skip
    [step] = results["steps"]
    assert exit_code == code, stderr
    assert 9 <= step["errors_by_kind"]["http_503"] <= 11
    assert step["errors_by_class"] == {"http": step["errors_by_kind"]["http_503"]}
    # Every request reached the server once (and the preflight): failures are not resent.
    assert arrivals(url) == 1 + step["requests"] + step["warmup_requests"]
    assert step["failed"] is (code != 0)
    assert results["load"]["max_error_rate"] == float(max_error_rate or 0)


def test_the_step_line_parts_the_warm_up_from_the_measured_requests(tmp_path: Path) -> None:
    """The running count includes the warm-up; the step's figures and summary do not."""
    with server_process("--ttft-ms", "5", "--itl-ms", "2") as (_server, url):
        code, stderr, results = bench(url, tmp_path / "o", "--users", "2", "--duration", "2",
                                      "--warmup", "1")  # fmt: skip
    step = results["steps"][0]
    assert code == 0 and step["warmup_requests"] > 0
    assert f"{step['requests']} measured + {step['warmup_requests']} warm-up" in stderr
    assert f"0 of {step['requests']:,} requests failed" in stderr
