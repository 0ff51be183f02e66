"""The process that hosts a multi-region rehearsal: regional fleets, a weighted front, a controller.

Per region, emulated servers behind that region's own nginx (least outstanding requests);
in front of the regions, a global nginx whose weighted round-robin upstreams stand in for
weighted DNS records. Every control period the controller scrapes what each region's
servers expose (``/ready`` and the time-to-first-token histogram of ``/metrics``), turns it
into :class:`~inferfleet.constructs.traffic_controller.weights.RegionSignals`, calls the same
:func:`~inferfleet.constructs.traffic_controller.weights.decide` the Lambda calls, and applies
new weights by rewriting the front's config and reloading it (streams already open stay on
the old workers, as resolvers that cached an answer keep their region).

A small admin API on 127.0.0.1 serves ``GET /state`` and ``GET /timeline`` and takes
``POST /scenario`` (slow a region down or kill some of its servers, from one instant to
another on the monotonic clock every process here shares) and ``POST /controller``.

Run as ``python -m inferfleet.cli.local.regions_host --config JSON --workdir DIR --nginx PATH
[--detached]``; it prints one JSON line (:class:`RegionsHostInfo`, or ``{"error": ...}``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from inferfleet.cli.errors import UserError
from inferfleet.cli.local import nginx
from inferfleet.cli.local.emulator import TTFT_BUCKETS_S, EmulatedServer
from inferfleet.cli.local.regions import RegionInfo, RegionsConfig, RegionsHostInfo
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.constructs.traffic_controller.weights import (
    RegionSignals,
    RegionState,
    decide,
)

_log = logging.getLogger("inferfleet.local.regions")
_NGINX_START_TIMEOUT_S = 20.0
_PORT_ATTEMPTS = 5
_SCRAPE_TIMEOUT_S = 0.5
_TTFT_BUCKET = re.compile(
    r'^inferfleet_emulator_time_to_first_token_seconds_bucket\{[^}]*le="([^"]+)"\} (\d+)$', re.M
)
_SERVED = re.compile(r"^inferfleet_emulator_served_requests_total\{[^}]*\} (\d+)$", re.M)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


def slowed(profile: ServerProfile, factor: float) -> ServerProfile:
    """Every prefill and decode step ``factor`` times longer: a region in a brownout."""
    return profile.model_copy(
        update={
            name: getattr(profile, name) * factor
            for name in (
                "prefill_base_s",
                "prefill_per_token_s",
                "decode_base_s",
                "decode_per_sequence_s",
            )
        }
    )


@dataclass
class Instance:
    """One emulated server; ``runner`` is None while the scenario has it killed."""

    server: EmulatedServer
    port: int
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        runner = web.AppRunner(
            self.server.application(),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        sock = _listening_socket(self.port)
        await web.SockSite(runner, sock, backlog=1024).start()
        self.port = sock.getsockname()[1]
        self.runner = runner

    async def kill(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()


@dataclass
class Region:
    name: str
    instances: list[Instance]
    nginx_process: subprocess.Popen[bytes] | None = None
    port: int = 0


@dataclass(frozen=True)
class InstanceSample:
    ready: bool
    ttft_counts: tuple[int, ...] | None = None
    served: int | None = None


def parse_metrics(text: str) -> tuple[tuple[int, ...], int]:
    """Per-bucket (not cumulative) TTFT counts and the served counter of one /metrics page."""
    cumulative = [int(count) for _, count in _TTFT_BUCKET.findall(text)]
    if len(cumulative) != len(TTFT_BUCKETS_S) + 1:
        raise ValueError("no time-to-first-token histogram in /metrics")
    counts = tuple(b - a for a, b in zip([0, *cumulative], cumulative, strict=False))
    served = _SERVED.search(text)
    return counts, int(served.group(1)) if served else 0


def histogram_quantile(counts: list[int], quantile: float) -> float | None:
    """The ``quantile`` of per-bucket counts over :data:`TTFT_BUCKETS_S`, interpolated in its
    bucket as Prometheus does (the top finite bound for the overflow bucket)."""
    total = sum(counts)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(counts):
        if seen + count >= rank and count > 0:
            if index == len(TTFT_BUCKETS_S):
                return TTFT_BUCKETS_S[-1]
            low = TTFT_BUCKETS_S[index - 1] if index else 0.0
            high = TTFT_BUCKETS_S[index]
            return low + (high - low) * (rank - seen) / count
        seen += count
    return TTFT_BUCKETS_S[-1]


def region_signals(
    before: list[InstanceSample], after: list[InstanceSample], period_s: float
) -> RegionSignals:
    """What CloudWatch would report for a region over one period, from two scrapes."""
    healthy = sum(sample.ready for sample in after)
    ttft = [0] * (len(TTFT_BUCKETS_S) + 1)
    served = 0
    for old, new in zip(before, after, strict=True):
        if new.ttft_counts is None:
            continue
        # A server that restarted counts from zero again.
        restarted = old.ttft_counts is None or sum(new.ttft_counts) < sum(old.ttft_counts)
        base = (0,) * len(ttft) if restarted else old.ttft_counts
        for index, (a, b) in enumerate(zip(base, new.ttft_counts, strict=True)):  # type: ignore[arg-type]
            ttft[index] += b - a
        served += (new.served or 0) - (0 if restarted else (old.served or 0))
    p99 = histogram_quantile(ttft, 0.99)
    return RegionSignals(
        ttft_p99_s=None if p99 is None else round(p99, 4),
        healthy_hosts=float(healthy),
        desired_hosts=float(len(after)),
        requests_per_target=round(served / max(healthy, 1) / period_s * 60.0, 2),
        in_service=float(len(after)),
        max_size=float(len(after)),
    )


@dataclass
class Front:
    """The global nginx: weighted round robin over the regional fronts."""

    binary: str
    paths: nginx.NginxPaths
    region_ports: dict[str, int]
    port: int = 0
    generation: int = 1
    process: subprocess.Popen[bytes] | None = None
    weights: dict[str, int] = field(default_factory=dict)

    def config(self, weights: dict[str, int]) -> nginx.NginxConfig:
        return nginx.NginxConfig(
            listen_port=self.port,
            upstream_ports=tuple(self.region_ports.values()),
            upstream_weights=tuple(weights[name] for name in self.region_ports),
            routing="round_robin",
            generation=self.generation,
        )

    def apply(self, weights: dict[str, int]) -> None:
        """Rewrite the weights and reload; returns once new workers serve them."""
        assert self.process is not None
        self.generation += 1
        config = self.config(weights)
        nginx.write_config(config, self.paths)
        nginx.check_config(self.binary, self.paths)
        retiring = nginx.reload(self.process.pid)
        nginx.wait_serving(config, timeout_s=20.0, paths=self.paths, retiring=retiring)
        self.weights = dict(weights)


def _start_nginx(
    binary: str,
    paths: nginx.NginxPaths,
    make_config: Any,
) -> tuple[subprocess.Popen[bytes], nginx.NginxConfig]:
    """Start nginx on a free port, retrying another when the one picked was taken meanwhile."""
    paths.create()
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        config = make_config(free_port())
        nginx.write_config(config, paths)
        paths.error_log.write_text("")
        process = nginx.start(binary, paths)
        try:
            nginx.wait_serving(
                config, timeout_s=_NGINX_START_TIMEOUT_S, process=process, paths=paths
            )
        except UserError:
            nginx.stop(process)
            if not nginx.address_in_use(paths) or attempt == _PORT_ATTEMPTS:
                raise
        else:
            return process, config
    raise AssertionError("unreachable")


class RegionsHost:
    """Everything the host process runs, and the controller loop."""

    def __init__(self, config: RegionsConfig, workdir: Path, binary: str) -> None:
        self.config = config
        self.workdir = workdir
        self.binary = binary
        self.regions: list[Region] = []
        self.front: Front | None = None
        self.controller_on = config.controller
        self.timeline: list[dict[str, Any]] = []
        self.state: dict[str, RegionState] = {}
        self._scenario_tasks: set[asyncio.Task[None]] = set()
        self._timeline_file = (workdir / "timeline.jsonl").open("a", buffering=1)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> RegionsHostInfo:
        for name in self.config.regions:
            instances = [
                Instance(
                    EmulatedServer(
                        f"{name}/emulator-{index}",
                        profile=self.config.profile,
                        model=self.config.model,
                    ),
                    port=0,
                )
                for index in range(self.config.servers)
            ]
            for instance in instances:
                await instance.start()
            self.regions.append(Region(name, instances))
        for region in self.regions:
            ports = tuple(instance.port for instance in region.instances)
            process, nginx_config = await asyncio.to_thread(
                _start_nginx,
                self.binary,
                nginx.NginxPaths(self.workdir / "nginx" / region.name),
                lambda port, ports=ports: nginx.NginxConfig(
                    listen_port=port, upstream_ports=ports, routing="least_outstanding_requests"
                ),
            )
            region.nginx_process, region.port = process, nginx_config.listen_port
        front = Front(
            self.binary,
            nginx.NginxPaths(self.workdir / "nginx" / "front"),
            {region.name: region.port for region in self.regions},
        )
        initial = self.config.initial_weights()

        def front_config(port: int) -> nginx.NginxConfig:
            front.port = port
            return front.config(initial)

        front.process, _ = await asyncio.to_thread(
            _start_nginx, self.binary, front.paths, front_config
        )
        front.weights = initial
        self.front = front
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=_SCRAPE_TIMEOUT_S)
        )
        return RegionsHostInfo(
            pid=os.getpid(),
            port=front.port,
            admin_port=0,
            front_nginx_pid=front.process.pid,
            regions=[
                RegionInfo(
                    name=region.name,
                    port=region.port,
                    nginx_pid=region.nginx_process.pid,  # type: ignore[union-attr]
                    instance_ports=tuple(instance.port for instance in region.instances),
                )
                for region in self.regions
            ],
            workdir=str(self.workdir),
        )

    async def close(self) -> None:
        for task in self._scenario_tasks:
            task.cancel()
        if self._session is not None:
            await self._session.close()
        processes = [region.nginx_process for region in self.regions]
        if self.front is not None:
            processes.append(self.front.process)
        for process in processes:
            if process is not None:
                await asyncio.to_thread(nginx.stop, process)
        for region in self.regions:
            for instance in region.instances:
                await instance.kill()
        self._timeline_file.close()

    def record(self, entry: dict[str, Any]) -> None:
        self.timeline.append(entry)
        self._timeline_file.write(json.dumps(entry) + "\n")

    async def scrape(self, region: Region) -> list[InstanceSample]:
        return list(await asyncio.gather(*(self._sample(i) for i in region.instances)))

    async def _sample(self, instance: Instance) -> InstanceSample:
        if instance.runner is None:
            return InstanceSample(ready=False)
        url = f"http://127.0.0.1:{instance.port}"
        assert self._session is not None
        try:
            async with self._session.get(f"{url}/ready") as response:
                ready = response.status == 200
            async with self._session.get(f"{url}/metrics") as response:
                counts, served = parse_metrics(await response.text())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return InstanceSample(ready=False)
        return InstanceSample(ready=ready, ttft_counts=counts, served=served)

    async def control(self) -> None:
        """Every period: scrape, decide (when on), apply, record. Periods keep their cadence."""
        period = self.config.period_s
        before = {region.name: await self.scrape(region) for region in self.regions}
        tick = time.perf_counter()
        while True:
            tick += period
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
            after = {region.name: await self.scrape(region) for region in self.regions}
            signals = {name: region_signals(before[name], after[name], period) for name in after}
            before = after
            await self._decide(signals)

    async def _decide(self, signals: dict[str, RegionSignals]) -> None:
        assert self.front is not None
        entry: dict[str, Any] = {
            "t": time.perf_counter(),
            "kind": "period",
            "controller": self.controller_on,
            "signals": {name: vars(figures) for name, figures in signals.items()},
        }
        if self.controller_on:
            decision = decide(
                self.front.weights,
                signals,
                self.config.policy,
                self.state,
                now=time.time(),
            )
            self.state = decision.state
            entry["decision"] = decision.as_log()
            if decision.changed:
                began = time.perf_counter()
                await asyncio.to_thread(self.front.apply, decision.weights)
                entry["applied_at"] = time.perf_counter()
                entry["applied_s"] = round(entry["applied_at"] - began, 4)
                _log.info("weights %s", decision.weights)
        entry["weights"] = dict(self.front.weights)
        self.record(entry)

    async def run_scenario(
        self, region_name: str, at: float, until: float, slowdown: float | None, kill: float | None
    ) -> None:
        region = next(region for region in self.regions if region.name == region_name)
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        began = time.perf_counter()
        killed: list[Instance] = []
        if slowdown is not None:
            slower = slowed(self.config.profile, slowdown)
            for instance in region.instances:
                instance.server.profile = instance.server.scheduler.profile = slower
        if kill is not None:
            killed = region.instances[: math.ceil(kill * len(region.instances) - 1e-9)]
            await asyncio.gather(*(instance.kill() for instance in killed))
        self.record(
            {
                "t": began,
                "kind": "brownout",
                "region": region_name,
                "slowdown": slowdown,
                "killed": [instance.server.instance_id for instance in killed],
            }
        )
        await asyncio.sleep(max(0.0, until - time.perf_counter()))
        lifted = time.perf_counter()
        for instance in region.instances:
            instance.server.profile = instance.server.scheduler.profile = self.config.profile
        for instance in killed:
            # A fresh process takes the dead one's place, on the same port.
            instance.server = EmulatedServer(
                instance.server.instance_id,
                profile=self.config.profile,
                model=self.config.model,
            )
            await instance.start()
        self.record({"t": lifted, "kind": "restored", "region": region_name})

    def admin_application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/state", self._state)
        app.router.add_get("/timeline", self._timeline)
        app.router.add_post("/scenario", self._scenario)
        app.router.add_post("/controller", self._controller)
        return app

    async def _state(self, _request: web.Request) -> web.Response:
        assert self.front is not None
        regions = []
        for region in self.regions:
            alive = sum(instance.runner is not None for instance in region.instances)
            regions.append(
                {
                    "name": region.name,
                    "url": f"http://127.0.0.1:{region.port}",
                    "weight": self.front.weights[region.name],
                    "servers": len(region.instances),
                    "alive": alive,
                    "status": (self.state.get(region.name) or RegionState()).status,
                }
            )
        last = next((entry for entry in reversed(self.timeline) if entry["kind"] == "period"), None)
        return web.json_response(
            {
                "emulated": True,
                "url": f"http://127.0.0.1:{self.front.port}",
                "controller": self.controller_on,
                "period_s": self.config.period_s,
                "weights": self.front.weights,
                "regions": regions,
                "last_period": last,
            }
        )

    async def _timeline(self, _request: web.Request) -> web.Response:
        return web.json_response(self.timeline)

    async def _scenario(self, request: web.Request) -> web.Response:
        body = await request.json()
        names = [region.name for region in self.regions]
        if body.get("region") not in names:
            return web.json_response({"error": f"region must be one of {names}"}, status=400)
        task = asyncio.create_task(
            self.run_scenario(
                body["region"],
                float(body["at"]),
                float(body["until"]),
                body.get("slowdown"),
                body.get("kill"),
            )
        )
        self._scenario_tasks.add(task)
        task.add_done_callback(self._scenario_tasks.discard)
        return web.json_response({"scheduled": True})

    async def _controller(self, request: web.Request) -> web.Response:
        self.controller_on = bool((await request.json()).get("enabled"))
        return web.json_response({"controller": self.controller_on})


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.buffer.read()
    loop.call_soon_threadsafe(stop.set)


async def host(config: RegionsConfig, workdir: Path, binary: str, *, detached: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    workdir.mkdir(parents=True, exist_ok=True)
    regions = RegionsHost(config, workdir, binary)
    admin: web.AppRunner | None = None
    controller: asyncio.Task[None] | None = None
    try:
        info = await regions.start()
        admin = web.AppRunner(regions.admin_application(), access_log=None)
        await admin.setup()
        sock = _listening_socket()
        await web.SockSite(admin, sock).start()
        info = info.model_copy(update={"admin_port": sock.getsockname()[1]})
        controller = asyncio.create_task(regions.control())
        _report(info.model_dump())
        if not detached:
            threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True).start()
        stop_wait = asyncio.ensure_future(stop.wait())
        await asyncio.wait({controller, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if controller.done():
            controller.result()
        stop_wait.cancel()
        return 0
    except UserError as error:
        _report({"error": str(error), "exit_code": error.exit_code})
        return 1
    finally:
        if controller is not None:
            controller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await controller
        if admin is not None:
            await admin.cleanup()
        await regions.close()


def _report(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="RegionsConfig as JSON")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--nginx", required=True, help="path of the nginx binary")
    parser.add_argument("--detached", action="store_true", help="keep running without stdin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = RegionsConfig.model_validate_json(args.config)
    return asyncio.run(host(config, args.workdir, args.nginx, detached=args.detached))


if __name__ == "__main__":
    sys.exit(main())
