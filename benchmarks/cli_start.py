"""How fast the fleet-file commands start: `finetune status` against `validate`.

`finetune status JOB --config fleet.yaml` reads the fleet plan (for the personalization
region and the stack name) and then asks CloudFormation for the stack's outputs. Its start is
the time from launching the process to that first AWS request. Here the request goes to a
stand-in endpoint on 127.0.0.1 that notes when it arrived and answers like CloudFormation for
a stack that does not exist, so the command ends at once (exit 1) and nothing is deployed.

Prints, over RUNS runs each (median, min, max): `inferfleet finetune status --help`,
`inferfleet validate`, the start of `inferfleet finetune status` (to its first request) and its
whole run, with the start's ratio to `validate`; each with its CPU time, which a loaded machine
changes less than the wall time, and whether the package's modules started from cached
bytecode (as an installed package's do) or were compiled at every start (a checkout run with
PYTHONDONTWRITEBYTECODE set). Target: start under 0.5 s.

    .venv/bin/python benchmarks/cli_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INFERFLEET = Path(sys.executable).with_name("inferfleet")
NO_STACK = (
    b'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error>'
    b"<Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id x does not exist"
    b"</Message></Error><RequestId>1</RequestId></ErrorResponse>"
)


class FirstRequest(BaseHTTPRequestHandler):
    arrived: float | None = None

    def do_POST(self) -> None:  # CloudFormation's query API
        if FirstRequest.arrived is None:
            FirstRequest.arrived = time.perf_counter()
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(NO_STACK)))
        self.end_headers()
        self.wfile.write(NO_STACK)

    def log_message(self, *args: object) -> None:
        pass


CPU: dict[str, list[float]] = {}


def timed(argv: list[str], env: dict[str, str], label: str) -> tuple[float, int]:
    """Wall time and exit code; the child's CPU time (user + system) goes to CPU[label]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, cwd=REPO, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(label, []).append(cpu)
    return wall, result.returncode


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values) * 1000:6.0f} ms  "
        f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"
    )


def bytecode(env: dict[str, str]) -> str:
    """How the runs loaded the package's own modules; inferfleet.infra.plan stands for them."""
    plan = REPO / "infra" / "plan.py"
    if Path(importlib.util.cache_from_source(str(plan))).exists():
        return "cached bytecode"
    if env.get("PYTHONDONTWRITEBYTECODE"):
        return "no bytecode cache: every start compiles the package (PYTHONDONTWRITEBYTECODE)"
    return "bytecode not cached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    server = ThreadingHTTPServer(("127.0.0.1", 0), FirstRequest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.pop("AWS_PROFILE", None)
    config = str(REPO / "fleet.yaml")
    status = [str(INFERFLEET), "finetune", "status", "0123", "--user", "u", "--config", config]
    figures: dict[str, list[float]] = {"help": [], "validate": [], "start": [], "whole": []}
    for _ in range(runs):
        figures["help"].append(timed([*status[:3], "--help"], env, "help")[0])
        figures["validate"].append(
            timed([str(INFERFLEET), "validate", "-c", config], env, "validate")[0]
        )
        FirstRequest.arrived = None
        launched = time.perf_counter()
        whole, code = timed([*status, "--endpoint-url", endpoint], env, "whole")
        assert code == 1 and FirstRequest.arrived is not None, "the command did not reach AWS"
        figures["start"].append(FirstRequest.arrived - launched)
        figures["whole"].append(whole)
    server.shutdown()
    load = os.getloadavg()[0]
    print(f"{runs} runs each, {os.cpu_count()} CPUs, load average {load:.1f}, {bytecode(env)}")
    print("wall time (CPU time of the process: user + system)")
    for label, title in (
        ("help", "finetune status --help"),
        ("validate", "validate --config fleet.yaml"),
        ("whole", "finetune status: whole run"),
    ):
        print(f"{title:32}{summary(figures[label])}  cpu {summary(CPU[label])}")
    print(f"{'finetune status: start':32}{summary(figures['start'])}  (to its first request)")
    ratio = statistics.median(figures["start"]) / statistics.median(figures["validate"])
    print(f"start / validate                {ratio:.2f}x   (target: start under 500 ms)")


if __name__ == "__main__":
    main()
