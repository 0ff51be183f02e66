"""Test fleets, and the ``inferfleet`` command run as a subprocess against a moto server."""

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from moto_server import MotoServer, offline_aws_environment

INFERFLEET = Path(sys.executable).with_name("inferfleet")
CLI_TIMEOUT_S = 600


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as one JSON object (fails on a line that is not)."""
        return [json.loads(line) for line in self.stdout.splitlines()]


def cli_environment(server: MotoServer) -> dict[str, str]:
    """This process's environment with test credentials for ``server`` and no AWS profile."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    env.update(offline_aws_environment(server))
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def run_inferfleet(args: list[str], server: MotoServer, cwd: Path) -> CliRun:
    """``inferfleet ARGS --endpoint-url <moto>`` with test credentials and no AWS profile."""
    result = subprocess.run(
        [str(INFERFLEET), *args, "--endpoint-url", server.url],
        cwd=cwd,
        env=cli_environment(server),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    return CliRun(result.returncode, result.stdout, result.stderr)


def aws_client(server: MotoServer, service: str, region: str) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def stack_names(server: MotoServer, region: str) -> list[str]:
    stacks = aws_client(server, "cloudformation", region).describe_stacks()["Stacks"]
    return [s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"]


class ReadinessHandler(BaseHTTPRequestHandler):
    """200 on the readiness path; 503 elsewhere, except ``/warming`` from the third call on."""

    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        ready = self.path == "/v2/health/ready" or (self.path == "/warming" and self.calls > 2)
        self.send_response(200 if ready else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def readiness_server() -> Iterator[str]:
    """A model server's readiness endpoint on 127.0.0.1; yields its base URL."""
    ReadinessHandler.calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ReadinessHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
