"""A multi-region local rehearsal: one emulated fleet per region, a weighted global front, the
traffic controller on a period of seconds.

>>> with MultiRegionFleet(RegionsConfig(regions=local_region_names(3))) as fleet:
...     fleet.url                      # the global front, http://127.0.0.1:PORT
...     fleet.schedule(region="local-1", at=t0 + 20, until=t0 + 40, slowdown=4)
...     fleet.timeline()               # every period's signals, decision and weights

Each region is emulated servers behind that region's own nginx (least outstanding
requests); a global nginx with weighted round-robin upstreams over the regional fronts
stands in for weighted DNS records. The controller in the host process
(:mod:`.regions_host`) feeds the same weight function the Lambda runs with what the
regional servers expose, and applies weights by reloading the front. From the shell::

    inferfleet local up --regions 3 [--period 2] [--objective 0.25]
    inferfleet local status --json
    inferfleet local down
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inferfleet.cli.errors import UserError, pydantic_problem
from inferfleet.cli.local import nginx
from inferfleet.cli.local.config import DEFAULT_MODEL
from inferfleet.cli.local.fleet import is_host_process, spawn_host, stop_host
from inferfleet.cli.local.state import StateDir
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.constructs.traffic_controller.weights import TOTAL, WeightPolicy, apportion

HOST_MODULE = "inferfleet.cli.local.regions_host"
REGION_PREFIX = "local-"
# With the default server profile a region at half load answers in 40..60 ms (P99); a
# region slowed 4x needs ~0.18 s even when idle, over the recovery threshold
# (recover_ratio x objective), so it stays drained until the brownout ends.
LOCAL_OBJECTIVE_S = 0.15
LOCAL_PERIOD_S = 2.0
STATE_SUBDIR = "regions"


def local_region_names(count: int) -> tuple[str, ...]:
    return tuple(f"{REGION_PREFIX}{index}" for index in range(count))


class RegionsConfig(BaseModel):
    """A multi-region rehearsal: ``servers`` emulators in each of ``regions``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: tuple[str, ...] = Field(min_length=1, max_length=8, description="Region names.")
    servers: int = Field(default=3, ge=1, le=32, description="Emulated servers per region.")
    profile: ServerProfile = Field(
        default_factory=ServerProfile, description="Batching and timing of every server."
    )
    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    period_s: float = Field(
        default=LOCAL_PERIOD_S, ge=0.2, le=600, description="Control period, seconds."
    )
    controller: bool = Field(default=True, description="False keeps the initial weights.")
    policy: WeightPolicy = Field(
        default_factory=lambda: WeightPolicy(objective_s=LOCAL_OBJECTIVE_S)
    )

    def initial_weights(self) -> dict[str, int]:
        return apportion(TOTAL, dict.fromkeys(self.regions, 1.0))


def build_regions_config(**fields: Any) -> RegionsConfig:
    """Validate into a config; the first problem becomes a ``UserError`` naming the flag."""
    try:
        config = RegionsConfig.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "config"
        raise UserError(f"{where}: {pydantic_problem(first)}") from None
    problems = config.policy.problems()
    if problems:
        field, message = problems[0]
        raise UserError(f"--{field.replace('_', '-').removesuffix('-s')}: {message}")
    return config


class RegionInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    port: int
    nginx_pid: int
    instance_ports: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RegionsHostInfo(BaseModel):
    """What a started multi-region host reports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    port: int
    admin_port: int
    front_nginx_pid: int
    regions: list[RegionInfo]
    workdir: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def _admin(info: RegionsHostInfo, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{info.admin_url}{path}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def launch(
    config: RegionsConfig, workdir: Path, binary: str, *, detached: bool, timeout_s: float
) -> tuple[RegionsHostInfo, subprocess.Popen[bytes]]:
    """Start a host process and wait until every region's servers and fronts serve."""
    report, process = spawn_host(
        HOST_MODULE, config.model_dump_json(), workdir, binary, detached, timeout_s
    )
    try:
        info = RegionsHostInfo.model_validate(report)
    except BaseException:
        stop_host(process.pid, process)
        raise
    return info, process


class MultiRegionFleet:
    """A multi-region rehearsal as a context manager; stopped on leaving, by any exception."""

    def __init__(
        self,
        config: RegionsConfig,
        *,
        nginx_binary: str | None = None,
        workdir: Path | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.config = config
        self._nginx_binary = nginx_binary
        self._workdir = workdir
        self._startup_timeout_s = startup_timeout_s
        self._info: RegionsHostInfo | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._owned_workdir: Path | None = None

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
        binary = nginx.find_nginx(self._nginx_binary)
        workdir = self._workdir
        if workdir is None:
            workdir = self._owned_workdir = Path(tempfile.mkdtemp(prefix="inferfleet-regions-"))
        try:
            self._info, self._process = launch(
                self.config, workdir, binary, detached=False, timeout_s=self._startup_timeout_s
            )
        except BaseException:
            self._remove_owned_workdir()
            raise

    def stop(self) -> None:
        info, self._info = self._info, None
        try:
            if info is not None:
                stop_host(info.pid, self._process)
        finally:
            self._remove_owned_workdir()

    def _remove_owned_workdir(self) -> None:
        if self._owned_workdir is not None:
            shutil.rmtree(self._owned_workdir, ignore_errors=True)
            self._owned_workdir = None

    @property
    def info(self) -> RegionsHostInfo:
        if self._info is None:
            raise UserError("local regions: not started; use it as `with MultiRegionFleet(...)`")
        return self._info

    @property
    def url(self) -> str:
        return self.info.url

    def schedule(
        self,
        *,
        region: str,
        at: float,
        until: float,
        slowdown: float | None = None,
        kill: float | None = None,
    ) -> None:
        """Slow ``region`` down (or kill a fraction of its servers) from ``at`` to ``until``,
        instants of ``time.perf_counter`` (the monotonic clock this host shares)."""
        _admin(
            self.info,
            "/scenario",
            {"region": region, "at": at, "until": until, "slowdown": slowdown, "kill": kill},
        )

    def timeline(self) -> list[dict[str, Any]]:
        return _admin(self.info, "/timeline")

    def state(self) -> dict[str, Any]:
        return _admin(self.info, "/state")

    def describe(self) -> dict[str, Any]:
        """What a benchmark report should record about this target."""
        return {
            "emulated": True,
            "url": self.url,
            "regions": list(self.config.regions),
            "servers_per_region": self.config.servers,
            "profile": self.config.profile.model_dump(),
            "period_s": self.config.period_s,
            "controller": self.config.controller,
            "policy": vars(self.config.policy),
        }


@dataclass(frozen=True)
class BackgroundRegions:
    """A multi-region rehearsal left running by ``local up --regions``."""

    config: RegionsConfig
    info: RegionsHostInfo
    started_at: str


def _state_dir(root: Path) -> StateDir:
    return StateDir(root / STATE_SUBDIR, within=root)


def start_background(
    config: RegionsConfig, root: Path, *, timeout_s: float = 60.0
) -> BackgroundRegions:
    """Start a detached rehearsal and record it next to the single-region fleet's state."""
    where = _state_dir(root)
    with where.locked():
        existing = _read(where)
        if existing is not None and is_host_process(existing.info.pid):
            raise UserError(
                f"local regions: already running at {existing.info.url} (state in "
                f"{where.root}); stop it with `inferfleet local down` first",
                exit_code=1,
            )
        if existing is not None:
            stop_host(existing.info.pid, None)
        where.clear()
        binary = nginx.find_nginx()
        info, _ = launch(config, where.run_dir, binary, detached=True, timeout_s=timeout_s)
        running = BackgroundRegions(config, info, datetime.now(UTC).isoformat())
        staging = where.state_file.with_suffix(".tmp")
        staging.write_text(
            json.dumps(
                {
                    "config": json.loads(config.model_dump_json()),
                    "info": info.model_dump(),
                    "started_at": running.started_at,
                },
                indent=2,
            )
        )
        os.replace(staging, where.state_file)
        return running


def _read(where: StateDir) -> BackgroundRegions | None:
    if not where.state_file.exists():
        return None
    try:
        data = json.loads(where.state_file.read_text())
        return BackgroundRegions(
            RegionsConfig.model_validate(data["config"]),
            RegionsHostInfo.model_validate(data["info"]),
            str(data["started_at"]),
        )
    except (OSError, ValueError, KeyError, ValidationError) as error:
        raise UserError(
            f"{where.state_file}: unreadable state ({error}); remove the file after making sure "
            f"no `{HOST_MODULE}` process remains"
        ) from None


def running_background(root: Path) -> BackgroundRegions | None:
    running = _read(_state_dir(root))
    if running is None or not is_host_process(running.info.pid):
        return None
    return running


def stop_background(root: Path) -> BackgroundRegions | None:
    where = _state_dir(root)
    with where.locked():
        running = _read(where)
        if running is not None:
            stop_host(running.info.pid, None)
        where.clear()
        return running


def describe_background(running: BackgroundRegions) -> dict[str, Any]:
    """Status of a running rehearsal: the front, each region's weight and servers."""
    try:
        live = _admin(running.info, "/state")
    except OSError as error:
        live = {"error": f"admin API did not answer ({error})"}
    return {
        "running": True,
        "emulated": True,
        "url": running.info.url,
        "started_at": running.started_at,
        "pid": running.info.pid,
        "servers_per_region": running.config.servers,
        **live,
    }
