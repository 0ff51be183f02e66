"""``protocol="grpc"``: the emulators' gRPC face behind nginx ``grpc_pass``, read by bench."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from inferfleet.cli.bench.clients import client_for
from inferfleet.cli.bench.clients.base import ClientSettings
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec
from inferfleet.cli.local.fleet import LocalFleet
from inferfleet.cli.sizing.profile import ServerProfile

# 5 ms decode steps: a 400-token stream stays open ~2 s, a 3-token one is over at once.
PROFILE = ServerProfile(decode_base_s=0.005, decode_per_sequence_s=0.0, prefill_base_s=0.0)


@pytest.fixture(scope="module")
def fleet() -> Iterator[LocalFleet]:
    with LocalFleet(servers=3, protocol="grpc", profile=PROFILE) as running:
        yield running


def spec(index: int, tokens: int) -> RequestSpec:
    return RequestSpec(index=index, prompt="what fits in a carry-on", prompt_tokens=6,
                       output_tokens=tokens)  # fmt: skip


async def short_while_held(target: str, held: int, short: int) -> tuple[list, list]:
    """``held`` long streams kept open, then ``short`` short requests one after another."""
    async with client_for("triton-grpc", ClientSettings(target=target, timeout=30)) as client:
        long_records = [RequestRecord(i, 6, 400) for i in range(held)]
        tasks = [asyncio.create_task(client.send(spec(i, 400), r)) for i, r in
                 enumerate(long_records)]  # fmt: skip
        while any(r.first_token is None for r in long_records):
            await asyncio.sleep(0.01)
        short_records = []
        for index in range(short):
            record = RequestRecord(100 + index, 6, 3)
            await client.send(spec(100 + index, 3), record)
            short_records.append(record)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return long_records, short_records


def test_nginx_grpc_passes_to_every_grpc_face_by_least_conn(fleet: LocalFleet) -> None:
    text = fleet.nginx_config_path.read_text()
    grpc_upstream = text.split("upstream inferfleet_grpc_instances {", 1)[1].split("}", 1)[0]
    assert "least_conn;" in grpc_upstream
    assert grpc_upstream.count("server 127.0.0.1:") == 3
    assert "grpc_pass grpc://inferfleet_grpc_instances;" in text
    assert fleet.grpc_url is not None and fleet.grpc_url != fleet.url


def test_streams_through_nginx_go_to_the_least_busy_server(fleet: LocalFleet) -> None:
    assert fleet.grpc_url is not None
    held, short = asyncio.run(short_while_held(fleet.grpc_url, held=2, short=6))
    assert all(r.first_token is not None and r.instance for r in held)
    assert len({r.instance for r in held}) == 2
    (idle,) = {f"emulator-{i}" for i in range(3)} - {r.instance for r in held}
    for record in short:
        assert record.ok, record.error_detail
        assert (record.chunks, len(record.itl_ms)) == (3, 2)
        # The gRPC face says it is emulated in a response parameter.
        assert record.emulated
    assert [r.instance for r in short] == [idle] * 6


def test_the_grpc_face_shares_the_scheduler_the_http_health_counts(fleet: LocalFleet) -> None:
    before = sum(h["served"] for h in fleet.instance_health())
    assert fleet.grpc_url is not None
    _, short = asyncio.run(short_while_held(fleet.grpc_url, held=0, short=2))
    assert all(r.ok for r in short)
    assert sum(h["served"] for h in fleet.instance_health()) == before + 2


def test_a_bad_request_is_an_error_response_not_a_broken_stream(fleet: LocalFleet) -> None:
    async def go() -> RequestRecord:
        settings = ClientSettings(target=fleet.grpc_url or "", model="no-such-model", timeout=10)
        async with client_for("triton-grpc", settings) as client:
            record = RequestRecord(0, 6, 3)
            await client.send(spec(0, 3), record)
            return record

    record = asyncio.run(go())
    assert record.error == "server_error"
    assert "no-such-model" in record.error_detail
    assert json.dumps(fleet.describe())  # the description stays JSON, grpc_url included
    assert fleet.describe()["grpc_url"] == fleet.grpc_url
