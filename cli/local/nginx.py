"""nginx in front of the emulators: configuration rendering and process control.

nginx runs from a private prefix directory (config, pid file, logs and temp
paths all inside it), listens on 127.0.0.1 only and needs no system
configuration. The routing policy becomes its nginx upstream method
(:attr:`Routing.nginx`: ``least_conn`` for least outstanding requests, ``random``, and
nginx's default weighted round robin).

The upstream lives in a shared-memory ``zone`` so every worker sees the same
in-flight counts, talks HTTP/1.1 keepalive to the emulators and has response
buffering off so streamed tokens pass through as they are produced. With gRPC ports,
a second server listens for HTTP/2 (cleartext) and ``grpc_pass``-es every stream to a
gRPC upstream under the same policy: each stream is one upstream request, so
``least_conn`` counts streams in flight, as a gRPC target group's LOR does.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from inferfleet.cli.errors import UserError
from inferfleet.constructs.routing import Routing

NGINX_ENV = "INFERFLEET_NGINX"
CONTROL_PATH = "/__inferfleet/nginx"
ROUTING_HEADER = "X-Inferfleet-Routing"
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/local/bin")
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# Where /proc is missing, several fresh connections in a row answered by the new
# generation stand in for seeing the old workers stop accepting.
_CONFIRMATIONS = 3


class NginxConfig(BaseModel):
    """What the rendered nginx.conf says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen_port: int = Field(ge=1, le=65535)
    upstream_ports: tuple[int, ...] = Field(min_length=1)
    routing: Routing
    upstream_weights: tuple[int, ...] | None = Field(
        default=None, description="Round-robin weight per upstream port; 0 marks it down."
    )
    grpc_listen_port: int | None = Field(
        default=None, ge=1, le=65535, description="The gRPC front's port; None: no gRPC front."
    )
    grpc_upstream_ports: tuple[int, ...] = Field(
        default=(), description="The servers' gRPC ports, in the order of upstream_ports."
    )
    generation: int = Field(default=1, ge=1, description="Bumped on every reload.")
    worker_processes: int = Field(default=1, ge=1)
    token: str = Field(
        default_factory=lambda: secrets.token_hex(8),
        pattern=r"^[0-9a-f]+$",
        description="Answered on the control path, so a readiness check knows the nginx that "
        "answered is this fleet's and not another one on the same port.",
    )


@dataclass(frozen=True)
class NginxPaths:
    """The private prefix directory of one nginx."""

    prefix: Path

    @property
    def conf(self) -> Path:
        return self.prefix / "conf" / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "logs" / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    def create(self) -> None:
        for sub in ("conf", "logs", *(f"temp/{name}" for name in _TEMP_PATHS)):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)


def find_nginx(explicit: str | None = None) -> str:
    """Path of the nginx binary: ``explicit``, ``$INFERFLEET_NGINX``, PATH, then sbin dirs."""
    candidate = explicit or os.environ.get(NGINX_ENV)
    if candidate:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise UserError(
            f"nginx: {candidate!r} (from {'the nginx option' if explicit else NGINX_ENV}) is "
            "not an executable file; point it at nginx or install nginx "
            "(`apt-get install nginx`)",
            exit_code=1,
        )
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRS])
    found = shutil.which("nginx", path=search_path)
    if found is None:
        raise UserError(
            "nginx: not found on PATH or in /usr/sbin; the local fleet routes through a real "
            "nginx: install it (`apt-get install nginx`, `brew install nginx`) or set "
            f"{NGINX_ENV} to its path",
            exit_code=1,
        )
    return found


def render(config: NginxConfig, paths: NginxPaths) -> str:
    """The complete nginx.conf for ``config``."""
    method = config.routing.nginx or None
    lines = [
        "# Rendered by inferfleet local; rewritten on every routing change.",
        "daemon off;",
        f"worker_processes {config.worker_processes};",
        f"pid {paths.pid_file};",
        f"error_log {paths.error_log} warn;",
    ]
    if os.geteuid() == 0:
        # As root nginx would drop workers to 'nobody', who cannot use the private
        # temp directories; keep them as the user that owns the prefix.
        import grp
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        lines.append(f"user {user} {group};")
    lines += [
        "events { worker_connections 4096; }",
        "http {",
        "    access_log off;",
        *(f"    {name}_temp_path {paths.prefix / 'temp' / name};" for name in _TEMP_PATHS),
        "    client_max_body_size 64m;",
        "    client_body_buffer_size 1m;",
        "    keepalive_requests 100000;",
        "    upstream inferfleet_instances {",
        "        zone inferfleet_instances 256k;",
    ]
    if method is not None:
        lines.append(f"        {method};")
    weights = config.upstream_weights or (None,) * len(config.upstream_ports)
    lines += [
        f"        server 127.0.0.1:{port} {_weighting(weight)}max_fails=0;"
        for port, weight in zip(config.upstream_ports, weights, strict=True)
    ]
    lines += [
        "        keepalive 256;",
        "        keepalive_requests 100000;",
        "    }",
        *_grpc_front(config, method, weights),
        "    server {",
        f"        listen 127.0.0.1:{config.listen_port} backlog=4096;",
        f"        location = {CONTROL_PATH} {{",
        "            default_type application/json;",
        f"            return 200 '{_control_body(config)}';",
        "        }",
        "        location / {",
        "            proxy_pass http://inferfleet_instances;",
        "            proxy_http_version 1.1;",
        '            proxy_set_header Connection "";',
        "            proxy_buffering off;",
        "            proxy_request_buffering off;",
        "            proxy_read_timeout 3600s;",
        "            proxy_send_timeout 3600s;",
        f"            add_header {ROUTING_HEADER} {config.routing} always;",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _grpc_front(
    config: NginxConfig, method: str | None, weights: tuple[int | None, ...]
) -> list[str]:
    if config.grpc_listen_port is None:
        return []
    lines = [
        "    upstream inferfleet_grpc_instances {",
        "        zone inferfleet_grpc_instances 256k;",
        *([f"        {method};"] if method is not None else []),
        *(
            f"        server 127.0.0.1:{port} {_weighting(weight)}max_fails=0;"
            for port, weight in zip(config.grpc_upstream_ports, weights, strict=True)
        ),
        "        keepalive 256;",
        "        keepalive_requests 100000;",
        "    }",
        "    server {",
        f"        listen 127.0.0.1:{config.grpc_listen_port} http2 backlog=4096;",
        # One client channel carries every user's stream.
        "        http2_max_concurrent_streams 4096;",
        "        location / {",
        "            grpc_pass grpc://inferfleet_grpc_instances;",
        "            grpc_read_timeout 3600s;",
        "            grpc_send_timeout 3600s;",
        "        }",
        "    }",
    ]
    return lines


def _weighting(weight: int | None) -> str:
    if weight is None:
        return ""
    return f"weight={weight} " if weight > 0 else "down "


def _control_body(config: NginxConfig) -> str:
    return json.dumps(
        {"generation": config.generation, "routing": config.routing, "token": config.token}
    )


def write_config(config: NginxConfig, paths: NginxPaths) -> None:
    """Write nginx.conf atomically, so a reload never reads half a file."""
    staging = paths.conf.with_suffix(".tmp")
    staging.write_text(render(config, paths))
    os.replace(staging, paths.conf)


def _command(binary: str, paths: NginxPaths, *extra: str) -> list[str]:
    return [
        binary,
        "-p",
        f"{paths.prefix}/",
        "-e",
        str(paths.error_log),
        "-c",
        str(paths.conf),
        *extra,
    ]


def check_config(binary: str, paths: NginxPaths) -> None:
    """Run ``nginx -t`` on the written config; raise ``UserError`` with nginx's words."""
    result = subprocess.run(
        _command(binary, paths, "-t", "-q"), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise UserError(f"nginx: configuration rejected: {result.stderr.strip()}", exit_code=1)


def start(binary: str, paths: NginxPaths) -> subprocess.Popen[bytes]:
    """Start the nginx master in the foreground (``daemon off``) as a child process."""
    return subprocess.Popen(
        _command(binary, paths),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=paths.error_log.open("ab"),
    )


def served_control(port: int, timeout_s: float = 1.0) -> dict[str, object] | None:
    """The generation and routing nginx answers with on a fresh connection, or None."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{CONTROL_PATH}", headers={"Connection": "close"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None


def wait_serving(
    config: NginxConfig,
    *,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    paths: NginxPaths | None = None,
    retiring: frozenset[int] = frozenset(),
) -> None:
    """Block until this nginx (``config.token``) serves ``config.generation`` and no
    ``retiring`` worker accepts."""
    deadline = time.monotonic() + timeout_s
    confirmed = 0
    while confirmed < _CONFIRMATIONS or any(_accepting(pid) for pid in retiring):
        if process is not None and process.poll() is not None:
            raise UserError(
                f"nginx: exited with code {process.returncode} while starting: "
                f"{error_log_tail(paths)}",
                exit_code=1,
            )
        if time.monotonic() > deadline:
            raise UserError(
                f"nginx: not serving generation {config.generation} on port "
                f"{config.listen_port} after {timeout_s:.0f} s: {error_log_tail(paths)}",
                exit_code=1,
            )
        control = served_control(config.listen_port)
        if control == json.loads(_control_body(config)):
            confirmed += 1
        else:
            confirmed = 0
            time.sleep(0.02)


def worker_pids(master_pid: int) -> frozenset[int]:
    """The master's worker processes (empty where /proc is missing)."""
    workers = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            workers.add(int(stat.parent.name))
    return frozenset(workers)


def _accepting(worker_pid: int) -> bool:
    # A worker told to quit retitles itself and closes its listening sockets in
    # one step; in-flight streams then finish on it under the old config.
    try:
        title = Path(f"/proc/{worker_pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"worker process" in title and b"shutting down" not in title


def reload(master_pid: int) -> frozenset[int]:
    """Ask the nginx master to re-read its config; returns the workers being retired."""
    retiring = worker_pids(master_pid)
    try:
        os.kill(master_pid, signal.SIGHUP)
    except ProcessLookupError:
        raise UserError(
            f"nginx: master process {master_pid} is gone; restart the local fleet",
            exit_code=1,
        ) from None
    return retiring


def stop(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """Fast shutdown (SIGTERM); SIGKILL if nginx does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def error_log_tail(paths: NginxPaths | None, lines: int = 5) -> str:
    if paths is None or not paths.error_log.exists():
        return "no error log"
    tail = paths.error_log.read_text(errors="replace").strip().splitlines()[-lines:]
    return " | ".join(tail) or "error log is empty"


def address_in_use(paths: NginxPaths) -> bool:
    return paths.error_log.exists() and "Address already in use" in paths.error_log.read_text(
        errors="replace"
    )
