"""A local rehearsal fleet: emulated inference servers behind a real nginx on 127.0.0.1.

>>> with LocalFleet(servers=5, routing="least_outstanding_requests") as fleet:
...     fleet.url            # "http://127.0.0.1:PORT", the nginx front
...     fleet.set_routing("random")

The emulators and nginx run in a separate host process (see
:mod:`inferfleet.cli.local.host`), so a load generator in the caller's process
has its event loop to itself. Leaving the ``with`` block, by any exception or
Ctrl-C included, stops nginx and the emulators; if the caller dies outright the
host notices its closed stdin and stops too.
"""

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from inferfleet.cli.errors import UserError
from inferfleet.cli.local import nginx
from inferfleet.cli.local.config import (
    DEFAULT_MODEL,
    LocalFleetConfig,
    Routing,
    build_config,
    check_routing,
)
from inferfleet.cli.sizing.profile import Batching, ServerProfile

_STOP_TIMEOUT_S = 10.0
_HOST_MODULE = "inferfleet.cli.local.host"
# Hosts of a multi-region rehearsal (inferfleet.cli.local.regions_host) count as hosts too.
_HOST_MODULES = (_HOST_MODULE, "inferfleet.cli.local.regions_host")


class HostInfo(BaseModel):
    """What a started host reports: its pid, nginx's pid and the ports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    nginx_pid: int
    port: int
    instance_ports: tuple[int, ...]
    nginx_prefix: str
    nginx_token: str
    grpc_port: int | None = None
    grpc_instance_ports: tuple[int, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_url(self) -> str | None:
        """The gRPC front (``bench --api triton-grpc --target``), when the fleet has one."""
        return f"http://127.0.0.1:{self.grpc_port}" if self.grpc_port else None

    @property
    def instance_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.instance_ports]


@dataclass
class RunningHost:
    """A started host process, attached (``process`` set) or found again by pid."""

    info: HostInfo
    process: subprocess.Popen[bytes] | None = None

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        stop_host(self.info.pid, self.process, timeout_s)


def stop_host(
    pid: int, process: subprocess.Popen[bytes] | None, timeout_s: float = _STOP_TIMEOUT_S
) -> None:
    """SIGTERM the host (it stops nginx), then SIGKILL its process group if needed."""

    def alive() -> bool:
        return process.poll() is None if process is not None else is_host_process(pid)

    if process is not None and process.stdin is not None:
        process.stdin.close()
    if alive():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The host runs in its own session, so its pid is nginx's process group too.
    if _group_exists(pid):
        _signal_group(pid, signal.SIGKILL)
    if process is not None:
        process.wait()


def is_host_process(pid: int) -> bool:
    """True when ``pid`` runs a fleet host (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(module.encode() in cmdline for module in _HOST_MODULES)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise UserError(
                f"port: 127.0.0.1:{port} is already in use; pick another port or leave it "
                "out to use a free one"
            ) from None


def launch_host(
    config: LocalFleetConfig,
    workdir: Path,
    nginx_binary: str,
    *,
    detached: bool,
    timeout_s: float,
) -> RunningHost:
    """Start a host process and wait until nginx and every emulator serve."""
    report, process = spawn_host(
        _HOST_MODULE, config.model_dump_json(), workdir, nginx_binary, detached, timeout_s
    )
    host = RunningHost(HostInfo.model_validate(report), None if detached else process)
    try:
        _wait_instances_ready(host.info.instance_urls, timeout_s)
    except BaseException:
        host.stop()
        raise
    return host


def spawn_host(
    module: str,
    config_json: str,
    workdir: Path,
    nginx_binary: str,
    detached: bool,
    timeout_s: float,
) -> tuple[dict[str, Any], subprocess.Popen[bytes]]:
    """Run ``python -m module`` as a host in its own session; its ready report and process.

    A host that fails to start is stopped, and its ``{"error": ...}`` report raised.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module, "--config", config_json, "--workdir", str(workdir)]
    command += ["--nginx", nginx_binary, *(["--detached"] if detached else [])]
    log_path = workdir / "host.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL if detached else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        report = read_report(process, timeout_s, log_path)
    except BaseException:
        stop_host(process.pid, process)
        raise
    finally:
        if detached and process.stdout is not None:
            process.stdout.close()
    if "error" in report:
        stop_host(process.pid, process)
        raise UserError(str(report["error"]), exit_code=int(report.get("exit_code", 1)))
    return report, process


def read_report(
    process: subprocess.Popen[bytes], timeout_s: float, log_path: Path
) -> dict[str, Any]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UserError(
                f"local fleet: not ready after {timeout_s:.0f} s; see {log_path}", exit_code=1
            )
        readable, _, _ = select.select([process.stdout], [], [], min(remaining, 0.2))
        if readable:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                process.wait()
                raise UserError(
                    f"local fleet: host process exited with code {process.returncode} before "
                    f"it was ready: {_log_tail(log_path)}",
                    exit_code=1,
                )
            buffer += chunk
    return json.loads(buffer.split(b"\n", 1)[0])


def _log_tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return " | ".join(text.splitlines()[-lines:]) or f"no output in {path}"


def _wait_instances_ready(urls: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for url in urls:
        while not _ready(url):
            if time.monotonic() > deadline:
                raise UserError(f"local fleet: {url}/ready did not answer 200", exit_code=1)
            time.sleep(0.05)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=1.0) as response:
            return response.status == 200
    except OSError:
        return False


def fetch_health(url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """The ``/health`` JSON of one emulator (active, queued, served, ...)."""
    with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
        return json.loads(response.read())


def switch_routing(
    info: HostInfo,
    config: LocalFleetConfig,
    routing: Routing,
    generation: int,
    nginx_binary: str,
    timeout_s: float = 20.0,
    upstream_ports: tuple[int, ...] | None = None,
) -> None:
    """Rewrite nginx's upstream (policy, and which servers), reload, wait for new workers."""
    paths = nginx.NginxPaths(Path(info.nginx_prefix))
    upstream_ports = upstream_ports or info.instance_ports
    nginx_config = nginx.NginxConfig(
        listen_port=info.port,
        upstream_ports=upstream_ports,
        grpc_listen_port=info.grpc_port,
        grpc_upstream_ports=info.grpc_instance_ports[: len(upstream_ports)],
        routing=routing,
        generation=generation,
        worker_processes=config.nginx_workers,
        token=info.nginx_token,
    )
    nginx.write_config(nginx_config, paths)
    nginx.check_config(nginx_binary, paths)
    retiring = nginx.reload(info.nginx_pid)
    nginx.wait_serving(nginx_config, timeout_s=timeout_s, paths=paths, retiring=retiring)


class LocalFleet:
    """``servers`` emulated inference servers behind a real nginx, as a context manager.

    Args:
        servers: number of emulated servers (1..64).
        routing: ``"least_outstanding_requests"`` (nginx ``least_conn``), ``"random"``
            or ``"round_robin"``.
        profile: batching and timing of every server; ``None`` uses the defaults.
        port: nginx port on 127.0.0.1; ``None`` picks a free one.
        model: model name the servers report.
        protocol: ``"grpc"`` also serves Triton's gRPC streaming behind nginx ``grpc_pass``
            (:attr:`grpc_url`); default ``"http"``.
        nginx_workers: nginx worker processes (they share upstream state).
        nginx_binary: path of nginx; default ``$INFERFLEET_NGINX``, PATH, /usr/sbin.
        workdir: where nginx's prefix and the host log go; default a temporary
            directory removed on stop.
        startup_timeout_s: how long to wait for every server and nginx to serve.

    Raises:
        UserError: bad arguments, nginx missing, the port in use, or startup failure.
    """

    def __init__(
        self,
        servers: int = 5,
        routing: Routing = "least_outstanding_requests",
        profile: ServerProfile | None = None,
        *,
        port: int | None = None,
        model: str = DEFAULT_MODEL,
        protocol: str = "http",
        nginx_workers: int = 1,
        nginx_binary: str | None = None,
        workdir: Path | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        self.config = build_config(
            servers=servers,
            routing=routing,
            profile=profile or ServerProfile(),
            model=model,
            port=port,
            nginx_workers=nginx_workers,
            protocol=protocol,
        )
        self._nginx_binary = nginx_binary
        self._workdir = workdir
        self._startup_timeout_s = startup_timeout_s
        self._host: RunningHost | None = None
        self._owned_workdir: Path | None = None
        self._routing: Routing = self.config.routing
        self._active: int | None = None
        self._generation = 1

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._host is not None:
            raise UserError("local fleet: already started; stop it first", exit_code=1)
        binary = self._nginx_binary = nginx.find_nginx(self._nginx_binary)
        if self.config.port is not None:
            ensure_port_free(self.config.port)
        workdir = self._workdir
        if workdir is None:
            workdir = self._owned_workdir = Path(tempfile.mkdtemp(prefix="inferfleet-local-"))
        try:
            self._host = launch_host(
                self.config, workdir, binary, detached=False, timeout_s=self._startup_timeout_s
            )
        except BaseException:
            self._remove_owned_workdir()
            raise

    def stop(self) -> None:
        """Stop nginx and the emulators; safe to call twice."""
        host, self._host = self._host, None
        try:
            if host is not None:
                host.stop()
        finally:
            self._remove_owned_workdir()

    def _remove_owned_workdir(self) -> None:
        if self._owned_workdir is not None:
            shutil.rmtree(self._owned_workdir, ignore_errors=True)
            self._owned_workdir = None

    @property
    def _running(self) -> RunningHost:
        if self._host is None:
            raise UserError("local fleet: not started; use it as `with LocalFleet(...)`")
        return self._host

    @property
    def url(self) -> str:
        """The nginx front, ``http://127.0.0.1:PORT``."""
        return self._running.info.url

    @property
    def grpc_url(self) -> str | None:
        """The nginx gRPC front, ``http://127.0.0.1:PORT``; None unless ``protocol="grpc"``."""
        return self._running.info.grpc_url

    @property
    def instance_urls(self) -> list[str]:
        """Direct URLs of the emulated servers, bypassing nginx."""
        return self._running.info.instance_urls

    @property
    def servers(self) -> int:
        return self.config.servers

    @property
    def mode(self) -> Batching:
        return self.config.mode

    @property
    def profile(self) -> ServerProfile:
        return self.config.profile

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def routing(self) -> Routing:
        return self._routing

    @property
    def nginx_config_path(self) -> Path:
        return nginx.NginxPaths(Path(self._running.info.nginx_prefix)).conf

    def set_routing(self, routing: str) -> None:
        """Switch nginx's upstream policy; returns once new workers serve it.

        Requests in flight finish on the old workers under the old policy.
        """
        self._reconfigure(check_routing(routing), self._active)

    def resize(self, servers: int) -> None:
        """Route to the first ``servers`` emulators only (1..the fleet's size); the rest idle.

        A scaling sweep starts the fleet at its largest size and resizes it per step.
        """
        if not 1 <= servers <= self.config.servers:
            raise UserError(
                f"servers: the fleet has {self.config.servers} emulators; resize to 1.."
                f"{self.config.servers}, not {servers}"
            )
        self._reconfigure(self._routing, servers)

    @property
    def active_servers(self) -> int:
        """How many emulators nginx routes to (all of them unless resized)."""
        return self._active or self.config.servers

    def _reconfigure(self, routing: Routing, active: int | None) -> None:
        assert self._nginx_binary is not None
        self._generation += 1
        info = self._running.info
        switch_routing(
            info, self.config, routing, self._generation, self._nginx_binary,
            upstream_ports=info.instance_ports[:active] if active else None,
        )  # fmt: skip
        self._routing, self._active = routing, active

    def instance_health(self) -> list[dict[str, Any]]:
        """``/health`` of every emulator: instance, active, queued, served, tokens."""
        return [fetch_health(url) for url in self.instance_urls]

    def describe(self) -> dict[str, Any]:
        """What a benchmark report should record about this target."""
        return {
            "emulated": True,
            "url": self.url,
            "grpc_url": self.grpc_url,
            "servers": self.servers,
            "mode": self.mode,
            "routing": self.routing,
            "model": self.model,
            "profile": self.profile.model_dump(),
            "instance_urls": self.instance_urls,
        }
