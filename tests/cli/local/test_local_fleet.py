"""LocalFleet: nginx routes to every emulator, switches policy live, and cleans up."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from local_sse_client import stream
from processes import process_alive

from inferfleet.cli.errors import UserError
from inferfleet.cli.local import nginx
from inferfleet.cli.local.fleet import LocalFleet
from inferfleet.cli.sizing.profile import ServerProfile

pytestmark = pytest.mark.slow

# Fast steps: short requests finish in a few ms, 4000-token ones stream for 20 s.
FAST = ServerProfile(decode_base_s=0.005, decode_per_sequence_s=0.0, prefill_base_s=0.0)


@pytest.fixture(scope="module")
def fleet() -> Iterator[LocalFleet]:
    with LocalFleet(servers=5, routing="round_robin", profile=FAST) as running:
        yield running


def instances_of(url: str, count: int, *, hold_open: int = 0) -> tuple[list[str], list[str]]:
    """Send ``count`` short requests one after another while ``hold_open`` long streams run.

    Returns the instances that served the short requests and those holding the streams.
    """

    async def run() -> tuple[list[str], list[str]]:
        async with aiohttp.ClientSession() as session:
            held, streams = [], []
            for _ in range(hold_open):
                response = await session.post(
                    f"{url}/v1/completions",
                    json={"prompt": "hi", "max_tokens": 4000, "stream": True},
                )
                assert response.status == 200
                await response.content.readline()  # a token arrived: the request is in flight
                held.append(response.headers["X-Inferfleet-Instance"])
                streams.append(response)
            short = []
            for _ in range(count):
                result = await stream(session, url, {"prompt": "hi", "max_tokens": 1})
                short.append(result.instance)
            for response in streams:
                response.close()
            return short, held

    return asyncio.run(run())


def served_by_nginx(fleet: LocalFleet) -> dict[str, object]:
    with urllib.request.urlopen(f"{fleet.url}/__inferfleet/nginx", timeout=5) as response:
        return json.loads(response.read())


def test_round_robin_reaches_every_instance_in_turn(fleet: LocalFleet) -> None:
    fleet.set_routing("round_robin")
    short, _ = instances_of(fleet.url, 20)

    assert Counter(short) == {f"emulator-{i}": 4 for i in range(5)}
    assert all(short[i] == short[i + 5] for i in range(15))
    assert len(fleet.instance_urls) == fleet.servers == 5
    served = [health["served"] for health in fleet.instance_health()]
    assert all(count >= 4 for count in served)
    described = fleet.describe()
    assert (described["emulated"], described["routing"], described["servers"]) == (
        True,
        "round_robin",
        5,
    )
    assert described["profile"]["decode_base_s"] == FAST.decode_base_s


def test_least_outstanding_requests_sends_new_work_to_the_idle_instance(
    fleet: LocalFleet,
) -> None:
    fleet.set_routing("least_outstanding_requests")

    assert "least_conn;" in fleet.nginx_config_path.read_text()
    assert served_by_nginx(fleet)["routing"] == "least_outstanding_requests"
    short, held = instances_of(fleet.url, 10, hold_open=4)
    assert len(set(held)) == 4
    (idle,) = {f"emulator-{i}" for i in range(5)} - set(held)
    assert short == [idle] * 10


def test_random_spreads_work_regardless_of_load(fleet: LocalFleet) -> None:
    fleet.set_routing("random")

    text = fleet.nginx_config_path.read_text()
    assert "random;" in text
    assert "least_conn;" not in text
    assert fleet.routing == "random"
    short, _ = instances_of(fleet.url, 20, hold_open=4)
    # least_conn would send all 20 to the one idle instance; random cannot, bar 5**-19.
    assert len(set(short)) >= 2


def test_switching_routing_waits_for_new_workers_while_streams_finish_on_old(
    fleet: LocalFleet,
) -> None:
    host, port = fleet.url.removeprefix("http://").split(":")
    held = http.client.HTTPConnection(host, int(port), timeout=10)
    held.request(
        "POST",
        "/v1/completions",
        body=json.dumps({"prompt": "hi", "max_tokens": 4000, "stream": True}),
        headers={"Content-Type": "application/json"},
    )
    response = held.getresponse()
    assert response.readline().startswith(b"data: ")

    for policy in ("round_robin", "least_outstanding_requests", "random") * 3:
        fleet.set_routing(policy)
        for _ in range(5):
            assert served_by_nginx(fleet)["routing"] == policy
            with urllib.request.urlopen(f"{fleet.url}/health", timeout=5) as answer:
                assert answer.headers["X-Inferfleet-Routing"] == policy

    # The stream opened before the switches still flows from its old worker.
    lines = [response.readline() for _ in range(10)]
    assert lines.count(b"\n") == 5
    assert all(json.loads(line.removeprefix(b"data: ")) for line in lines if line != b"\n")
    held.close()


def test_unknown_routing_is_a_user_error(fleet: LocalFleet) -> None:
    with pytest.raises(UserError, match="routing: 'fastest' is not a routing policy; use one of"):
        fleet.set_routing("fastest")


def _pids_of(fleet: LocalFleet) -> tuple[int, int]:
    info = fleet._running.info
    return info.pid, info.nginx_pid


def _wait_gone(pids: tuple[int, ...], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(process_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _port_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_leaving_the_block_on_an_exception_stops_everything() -> None:
    with pytest.raises(KeyboardInterrupt), LocalFleet(servers=2, profile=FAST) as small:
        pids = _pids_of(small)
        ports = [int(url.rsplit(":", 1)[1]) for url in [small.url, *small.instance_urls]]
        workdir = small.nginx_config_path.parents[2]
        raise KeyboardInterrupt

    assert _wait_gone(pids, timeout_s=1)
    assert all(_port_closed(port) for port in ports)
    assert not workdir.exists()


def test_a_dead_caller_takes_its_fleet_down(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys, time
        from pathlib import Path
        from inferfleet.cli.local.fleet import LocalFleet
        fleet = LocalFleet(servers=1, workdir=Path(sys.argv[1])).__enter__()
        info = fleet._running.info
        print(json.dumps([info.pid, info.nginx_pid]), flush=True)
        time.sleep(60)
        """
    )
    caller = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert caller.stdout is not None
    pids = tuple(json.loads(caller.stdout.readline()))
    assert all(process_alive(pid) for pid in pids)

    os.kill(caller.pid, signal.SIGKILL)
    caller.wait()

    assert _wait_gone(pids)


def test_busy_port_and_missing_nginx_are_user_errors() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=rf"port: 127.0.0.1:{port} is already in use"):
            LocalFleet(servers=1, port=port).start()

    with pytest.raises(UserError, match="apt-get install nginx"):
        LocalFleet(servers=1, nginx_binary="/nonexistent/nginx").start()


def test_bad_arguments_are_user_errors() -> None:
    with pytest.raises(UserError, match="servers"):
        LocalFleet(servers=0)
    with pytest.raises(UserError, match="routing"):
        LocalFleet(routing="weighted")  # type: ignore[arg-type]


def test_least_conn_sees_every_workers_requests() -> None:
    # The upstream zone shares in-flight counts, so several workers still agree.
    with LocalFleet(
        servers=3, routing="least_outstanding_requests", profile=FAST, nginx_workers=2
    ) as fleet:
        assert len(nginx.worker_pids(_pids_of(fleet)[1])) == 2
        short, held = instances_of(fleet.url, 6, hold_open=2)

    (idle,) = {"emulator-0", "emulator-1", "emulator-2"} - set(held)
    assert short == [idle] * 6
