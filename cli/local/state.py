"""A local fleet left running in the background, found again by later commands.

``inferfleet local up`` starts a detached host and records it in a state
directory (default ``$XDG_CACHE_HOME/inferfleet/local``, else
``~/.cache/inferfleet/local``; override with ``--state-dir`` or
``$INFERFLEET_LOCAL_STATE_DIR``):

- ``state.json``: the config, pids, ports and start time;
- ``run/``: nginx's prefix (config, logs, temp) and ``host.log``;
- ``lock``: serialises ``up`` and ``down`` across processes;
- the marker of :mod:`inferfleet.cli.output_folder`: the folder is the local
  fleet's, so a folder with other files in it is refused rather than written
  into (``down`` removes ``run/``).

``local down`` stops the host (which stops nginx) and removes ``state.json``
and ``run/``. State whose processes are gone counts as not running and is
cleaned up by the next ``up`` or ``down``.
"""

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from inferfleet.cli import output_folder
from inferfleet.cli.errors import UserError
from inferfleet.cli.local import nginx
from inferfleet.cli.local.config import LocalFleetConfig
from inferfleet.cli.local.fleet import (
    HostInfo,
    ensure_port_free,
    fetch_health,
    is_host_process,
    launch_host,
    stop_host,
)
from inferfleet.cli.user_cache import user_cache_dir

WRITER = "inferfleet local"


def default_state_dir() -> Path:
    return user_cache_dir("local")


class FleetState(BaseModel):
    """What ``state.json`` records about a background fleet."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: LocalFleetConfig
    host: HostInfo
    nginx_binary: str
    started_at: datetime


class StateDir:
    """The files of one background fleet, in ``root``; ``within`` is the ``--state-dir``
    folder that holds ``root`` when it is a subfolder of it (the folder that is claimed)."""

    def __init__(self, root: Path, *, within: Path | None = None) -> None:
        self.root = root
        self.claimed = within or root
        self.state_file = root / "state.json"
        self.run_dir = root / "run"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        output_folder.claim(self.claimed, flag="--state-dir", writer=WRITER)
        self.root.mkdir(exist_ok=True)
        with (self.root / "lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def read(self) -> FleetState | None:
        if not self.state_file.exists():
            return None
        try:
            return FleetState.model_validate_json(self.state_file.read_text())
        except (ValidationError, OSError) as error:
            raise UserError(
                f"{self.state_file}: unreadable state ({error}); remove the file after making "
                "sure no `inferfleet.cli.local.host` process remains"
            ) from None

    def write(self, state: FleetState) -> None:
        staging = self.state_file.with_suffix(".tmp")
        staging.write_text(state.model_dump_json(indent=2))
        os.replace(staging, self.state_file)

    def clear(self) -> None:
        self.state_file.unlink(missing_ok=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def start_background(
    config: LocalFleetConfig,
    state_dir: StateDir,
    *,
    nginx_binary: str | None = None,
    timeout_s: float = 30.0,
) -> FleetState:
    """Start a detached fleet and record it; refuse when one is running already."""
    with state_dir.locked():
        existing = state_dir.read()
        if existing is not None and is_host_process(existing.host.pid):
            raise UserError(
                f"local fleet: already running at {existing.host.url} (state in "
                f"{state_dir.root}); stop it with `inferfleet local down` first",
                exit_code=1,
            )
        if existing is not None:
            stop_host(existing.host.pid, None)
        state_dir.clear()
        binary = nginx.find_nginx(nginx_binary)
        if config.port is not None:
            ensure_port_free(config.port)
        host = launch_host(config, state_dir.run_dir, binary, detached=True, timeout_s=timeout_s)
        state = FleetState(
            config=config,
            host=host.info,
            nginx_binary=binary,
            started_at=datetime.now(UTC),
        )
        try:
            state_dir.write(state)
        except BaseException:
            host.stop()
            state_dir.clear()
            raise
        return state


def stop_background(state_dir: StateDir) -> FleetState | None:
    """Stop the recorded fleet and remove its files; None when nothing was recorded."""
    with state_dir.locked():
        state = state_dir.read()
        if state is not None:
            stop_host(state.host.pid, None)
        state_dir.clear()
        return state


def running_state(state_dir: StateDir) -> FleetState | None:
    """The recorded fleet when its host still runs."""
    state = state_dir.read()
    if state is None or not is_host_process(state.host.pid):
        return None
    return state


def describe(state: FleetState, state_dir: StateDir) -> dict[str, Any]:
    """Status of a running fleet, with each instance's live counters."""
    instances = []
    for index, url in enumerate(state.host.instance_urls):
        entry: dict[str, Any] = {"url": url}
        try:
            health = fetch_health(url)
            entry |= {key: health[key] for key in ("instance", "active", "queued", "served")}
        except OSError as error:
            entry |= {"instance": f"emulator-{index}", "error": str(error)}
        instances.append(entry)
    return {
        "running": True,
        "emulated": True,
        "url": state.host.url,
        "protocol": state.config.protocol,
        "grpc_url": state.host.grpc_url,
        "servers": state.config.servers,
        "mode": state.config.mode,
        "routing": state.config.routing,
        "model": state.config.model,
        "profile": state.config.profile.model_dump(),
        "instances": instances,
        "pid": state.host.pid,
        "nginx_pid": state.host.nginx_pid,
        "started_at": state.started_at.isoformat(),
        "state_dir": str(state_dir.root),
    }
