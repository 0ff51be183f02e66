"""How fast the fleet-file commands start: `finetune status` against `validate`.

`finetune status JOB --config fleet.yaml` needs the fleet plan's names (the personalization
region and its stack) and then asks CloudFormation for the stack's outputs. Its start is the
time from launching the process to that first AWS request. Here the request goes to a
stand-in endpoint on 127.0.0.1 that notes when it arrived and answers like CloudFormation for
a stack that does not exist, so the command ends at once (exit 1) and nothing is deployed.

The first run on a fleet file plans it in full and records the names; later runs read the
record while nothing the plan read has changed. Both are timed: "planned" runs each start
with an empty cache folder, "recorded" runs share one.

Prints, over RUNS runs each (median, min, max): `inferfleet finetune status --help`,
`inferfleet validate`, the start of `inferfleet finetune status` planned and recorded (to its
first request) and the recorded whole run, with the starts' ratios to `validate`; each with
its CPU time, which a loaded machine changes less than the wall time. The commands start from
cached bytecode, as an installed package's modules do (pip compiles them; a checkout run
with PYTHONDONTWRITEBYTECODE compiles every module at every start: --compile-each-start
measures that). Target: start under 0.5 s.

    .venv/bin/python benchmarks/cli_start.py [--runs 7] [--compile-each-start]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
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


def child_environment(compile_each_start: bool, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.pop("AWS_PROFILE", None)
    if compile_each_start:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        # The checkout's modules get bytecode of their own, outside the repo.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "bytecode")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compile-each-start", action="store_true")
    arguments = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FirstRequest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    config = str(REPO / "fleet.yaml")
    status = [str(INFERFLEET), "finetune", "status", "0123", "--user", "u", "--config", config]
    validate = [str(INFERFLEET), "validate", "-c", config]
    figures: dict[str, list[float]] = {
        "help": [], "validate": [], "planned": [], "recorded": [], "whole": []
    }  # fmt: skip

    def first_request(env: dict[str, str], label: str) -> tuple[float, float]:
        FirstRequest.arrived = None
        launched = time.perf_counter()
        whole, code = timed([*status, "--endpoint-url", endpoint], env, label)
        assert code == 1 and FirstRequest.arrived is not None, "the command did not reach AWS"
        return FirstRequest.arrived - launched, whole

    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        env = child_environment(arguments.compile_each_start, workdir)
        recorded = {**env, "XDG_CACHE_HOME": str(workdir / "recorded")}
        timed(validate, env, "warm-up")  # compiles the bytecode of the planning modules
        first_request(recorded, "warm-up")  # and of the command's; records the names
        for run in range(arguments.runs):
            figures["help"].append(timed([*status[:3], "--help"], env, "help")[0])
            figures["validate"].append(timed(validate, env, "validate")[0])
            empty = {**env, "XDG_CACHE_HOME": str(workdir / f"empty-{run}")}
            figures["planned"].append(first_request(empty, "planned")[0])
            start, whole = first_request(recorded, "recorded")
            figures["recorded"].append(start)
            figures["whole"].append(whole)
    server.shutdown()
    load = os.getloadavg()[0]
    modules = (
        "every module compiled at each start (PYTHONDONTWRITEBYTECODE)"
        if arguments.compile_each_start
        else "modules from cached bytecode, as installed"
    )
    print(f"{arguments.runs} runs each, {os.cpu_count()} CPUs, load average {load:.1f}, {modules}")
    print("wall time (CPU time of the process: user + system)")
    for figure, cpu, title in (
        ("help", "help", "finetune status --help"),
        ("validate", "validate", "validate --config fleet.yaml"),
        ("whole", "recorded", "finetune status: whole run"),
    ):
        print(f"{title:32}{summary(figures[figure])}  cpu {summary(CPU[cpu])}")
    for label, title in (("planned", "start, planned"), ("recorded", "start, names recorded")):
        print(f"{'finetune status: ' + title:40}{summary(figures[label])}  (to its first request)")
    for label in ("planned", "recorded"):
        ratio = statistics.median(figures[label]) / statistics.median(figures["validate"])
        print(f"start {label} / validate{'':14}{ratio:.2f}x   (target: start under 500 ms)")


if __name__ == "__main__":
    main()
