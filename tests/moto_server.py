"""A real moto server for tests: one process per test session, reset between tests.

Import from a ``conftest.py`` and expose the fixtures there::

    from moto_server import moto_server, moto  # noqa: F401

``moto_server`` (session scope) starts ``moto_server -H 127.0.0.1 -p <free port>`` from the
venv's bin, waits until it answers and yields a :class:`MotoServer`. ``moto`` (function scope)
points boto3 at it through the environment (``AWS_ENDPOINT_URL``, test credentials, region),
resets its state before the test and yields the same object.

For a server of another scope (one per module, say), use :func:`running_moto_server` in
your own fixture, and :func:`offline_aws_environment` for the environment of subprocesses.

The server records the requests it receives (moto's recorder), so a test can check what
reached "AWS" rather than what a client meant to send.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEFAULT_REGION = "us-east-1"
STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MotoServer:
    """A running moto server; ``url`` uses ``localhost`` because moto parses S3 URLs by it."""

    url: str
    region: str
    process: subprocess.Popen[bytes]

    def _post(self, path: str, payload: Any = None) -> bytes:
        data = json.dumps(payload).encode() if payload is not None else b""
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def reset(self) -> None:
        """Forget every resource, and start the request recording afresh."""
        self._post("/moto-api/reset")
        self.restart_recording()

    def restart_recording(self) -> None:
        """Start the request recording afresh, keeping every resource."""
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def recorded_requests(self) -> list[dict[str, Any]]:
        """Requests the server received since the last reset: method, url, headers, body."""
        url = f"{self.url}/moto-api/recorder/download-recording"
        with urllib.request.urlopen(url, timeout=30) as response:
            lines = response.read().decode().splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        for entry in entries:
            if entry.get("body_encoded"):
                entry["body"] = base64.b64decode(entry["body"]).decode("utf-8", "replace")
                entry["body_encoded"] = False
        return entries

    def recorded_targets(self, target: str) -> list[dict[str, Any]]:
        """Bodies of recorded JSON-protocol calls with ``X-Amz-Target`` ending in ``target``.

        e.g. ``recorded_targets("CreateTrainingJob")`` for SageMaker.
        """
        bodies = []
        for entry in self.recorded_requests():
            headers = {key.lower(): value for key, value in entry["headers"].items()}
            if headers.get("x-amz-target", "").endswith(f".{target}"):
                bodies.append(json.loads(entry["body"] or "{}"))
        return bodies

    def set_sagemaker_endpoint_results(self, results: list[dict[str, str]]) -> None:
        """Queue the bodies moto's sagemaker-runtime InvokeEndpoint answers with."""
        self._post(
            "/moto-api/static/sagemaker/endpoint-results",
            {"region": self.region, "results": results},
        )


def _wait_until_up(server: MotoServer, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.process.returncode}")
        try:
            with urllib.request.urlopen(f"{server.url}/moto-api/", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {server.url} within {STARTUP_TIMEOUT_S} s")


@contextmanager
def running_moto_server(recording: Path) -> Iterator[MotoServer]:
    """A moto server on a free port of 127.0.0.1, stopped on exit; for fixtures of any scope."""
    port = free_port()
    binary = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)}
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MotoServer(url=f"http://localhost:{port}", region=DEFAULT_REGION, process=process)
    try:
        _wait_until_up(server, time.monotonic() + STARTUP_TIMEOUT_S)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def offline_aws_environment(server: MotoServer) -> dict[str, str]:
    """Variables that send every AWS client (boto3, the CDK CLI) to ``server`` with test
    credentials, and nowhere else: no profile, no shared config or credentials files."""
    return {
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": server.region,
        "AWS_REGION": server.region,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
    }


def point_boto3_at(server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """This process's boto3 talks to ``server``, with test credentials and no profile."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in offline_aws_environment(server).items():
        monkeypatch.setenv(name, value)
    return server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with running_moto_server(tmp_path_factory.mktemp("moto") / "recording.jsonl") as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    moto_server.reset()
    return point_boto3_at(moto_server, monkeypatch)
