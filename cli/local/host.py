"""The process that hosts a local fleet: all emulated servers plus the nginx in front.

It runs apart from the caller so a benchmark client never shares the emulators'
event loop. It binds every emulator to a free 127.0.0.1 port (and, for a gRPC fleet, its
gRPC face to another one, :mod:`~inferfleet.cli.local.grpc_emulator`), starts nginx as its
child, prints one JSON line on stdout (:class:`HostInfo` when ready,
``{"error": ...}`` when not) and then serves until SIGTERM or SIGINT, or, when
attached, until its stdin closes because the caller went away. On the way out
it stops nginx.

Run as ``python -m inferfleet.cli.local.host --config JSON --workdir DIR
--nginx PATH [--detached]``.
"""

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from inferfleet.cli.errors import UserError
from inferfleet.cli.local import nginx
from inferfleet.cli.local.config import LocalFleetConfig
from inferfleet.cli.local.emulator import EmulatedServer
from inferfleet.cli.local.fleet import HostInfo

_log = logging.getLogger("inferfleet.local.host")
_PORT_ATTEMPTS = 5
_NGINX_START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


async def _start_emulators(
    config: LocalFleetConfig,
) -> tuple[list[web.AppRunner], list[int], list[EmulatedServer]]:
    runners: list[web.AppRunner] = []
    ports: list[int] = []
    servers: list[EmulatedServer] = []
    for index in range(config.servers):
        server = EmulatedServer(f"emulator-{index}", profile=config.profile, model=config.model)
        runner = web.AppRunner(
            server.application(),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        sock = _listening_socket()
        await web.SockSite(runner, sock, backlog=1024).start()
        runners.append(runner)
        ports.append(sock.getsockname()[1])
        servers.append(server)
    return runners, ports, servers


async def _start_grpc_faces(servers: list[EmulatedServer]) -> tuple[list[Any], list[int]]:
    # Imported here: only a gRPC fleet needs grpcio and tritonclient's stubs.
    from inferfleet.cli.local.grpc_emulator import start_grpc_face

    started = [await start_grpc_face(server) for server in servers]
    return [grpc_server for grpc_server, _ in started], [port for _, port in started]


def _start_nginx(
    config: LocalFleetConfig,
    ports: list[int],
    binary: str,
    paths: nginx.NginxPaths,
    grpc_ports: list[int],
) -> tuple[subprocess.Popen[bytes], nginx.NginxConfig]:
    """Start nginx, retrying on another free port when a picked one was taken meanwhile."""
    paths.create()
    attempt = 0
    while True:
        attempt += 1
        nginx_config = nginx.NginxConfig(
            listen_port=config.port or free_port(),
            upstream_ports=tuple(ports),
            grpc_listen_port=free_port() if grpc_ports else None,
            grpc_upstream_ports=tuple(grpc_ports),
            routing=config.routing,
            worker_processes=config.nginx_workers,
        )
        nginx.write_config(nginx_config, paths)
        paths.error_log.write_text("")
        process = nginx.start(binary, paths)
        try:
            nginx.wait_serving(
                nginx_config, timeout_s=_NGINX_START_TIMEOUT_S, process=process, paths=paths
            )
        except UserError:
            nginx.stop(process)
            taken = nginx.address_in_use(paths)
            if taken and config.port:
                raise UserError(
                    f"port: 127.0.0.1:{config.port} is already in use; pick another port "
                    "or leave it out to use a free one"
                ) from None
            if not taken or attempt == _PORT_ATTEMPTS:
                raise
        else:
            return process, nginx_config


def _raise_open_file_limit() -> None:
    # nginx (a child) inherits this; 4096 worker connections need more than the
    # common soft limit of 1024 descriptors, which anyone may raise to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.buffer.read()
    loop.call_soon_threadsafe(stop.set)


async def host(config: LocalFleetConfig, workdir: Path, binary: str, *, detached: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runners: list[web.AppRunner] = []
    grpc_servers: list[Any] = []
    grpc_ports: list[int] = []
    process: subprocess.Popen[bytes] | None = None
    try:
        _raise_open_file_limit()
        runners, ports, servers = await _start_emulators(config)
        if config.protocol == "grpc":
            grpc_servers, grpc_ports = await _start_grpc_faces(servers)
        paths = nginx.NginxPaths(workdir / "nginx")
        process, nginx_config = await asyncio.to_thread(
            _start_nginx, config, ports, binary, paths, grpc_ports
        )
        info = HostInfo(
            pid=os.getpid(),
            nginx_pid=process.pid,
            port=nginx_config.listen_port,
            instance_ports=tuple(ports),
            nginx_prefix=str(paths.prefix),
            nginx_token=nginx_config.token,
            grpc_port=nginx_config.grpc_listen_port,
            grpc_instance_ports=tuple(grpc_ports),
        )
        _report(info.model_dump())
        if not detached:
            threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
        nginx_exit = asyncio.ensure_future(asyncio.to_thread(process.wait))
        stop_wait = asyncio.ensure_future(stop.wait())
        await asyncio.wait({nginx_exit, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if nginx_exit.done():
            _log.error("nginx exited with code %s; stopping the fleet", process.returncode)
            return 1
        stop_wait.cancel()
        return 0
    except UserError as error:
        _report({"error": str(error), "exit_code": error.exit_code})
        return 1
    finally:
        if process is not None:
            await asyncio.to_thread(nginx.stop, process)
        for grpc_server in grpc_servers:
            await grpc_server.stop(grace=1.0)
        for runner in runners:
            await runner.cleanup()


def _report(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="LocalFleetConfig as JSON")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--nginx", required=True, help="path of the nginx binary")
    parser.add_argument("--detached", action="store_true", help="keep running without stdin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = LocalFleetConfig.model_validate_json(args.config)
    return asyncio.run(host(config, args.workdir, args.nginx, detached=args.detached))


if __name__ == "__main__":
    sys.exit(main())
