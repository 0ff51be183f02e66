"""Each --api client against the timed server, and the error kinds a client records."""

from __future__ import annotations

import asyncio
import socket
import statistics

import pytest

from inferfleet.cli.bench.clients import client_for
from inferfleet.cli.bench.clients.base import ClientSettings
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.workload import RequestSpec

SPEC = RequestSpec(index=0, prompt="how fast is this", prompt_tokens=4, output_tokens=8)


def exchange(api: str, settings: ClientSettings, spec: RequestSpec = SPEC) -> RequestRecord:
    async def go() -> RequestRecord:
        async with client_for(api, settings) as client:
            record = RequestRecord(spec.index, spec.prompt_tokens, spec.output_tokens)
            await client.send(spec, record)
            return record

    return asyncio.run(go())


def assert_streamed(record: RequestRecord, *, source: str) -> None:
    assert record.ok, record.error_detail
    assert record.chunks == 8
    assert record.output_tokens == 8
    assert record.token_source == source
    assert record.first_token is not None and record.end is not None
    assert 49 <= (record.first_token - record.sent) * 1000 <= 80
    assert len(record.itl_ms) == 7
    # One late chunk makes one long gap and one short one; the median stays put.
    assert 8.5 <= statistics.median(record.itl_ms) <= 13
    assert record.instance is not None and record.instance.startswith("inst-")


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_openai_streams_with_usage(shared_server: str, endpoint: str) -> None:
    record = exchange("openai", ClientSettings(target=shared_server, endpoint=endpoint))
    assert_streamed(record, source="usage")
    assert record.usage_prompt_tokens == 4 or endpoint == "chat"


def test_openai_without_usage_counts_chunks(timed_server) -> None:
    url = timed_server(ttft_ms=50, itl_ms=10, no_usage=True)
    assert_streamed(exchange("openai", ClientSettings(target=url)), source="chunks")


def test_triton_generate_stream_finds_the_ready_model(shared_server: str) -> None:
    record = exchange("triton", ClientSettings(target=shared_server))
    assert_streamed(record, source="chunks")


def test_sagemaker_response_stream_is_signed_and_decoded(
    shared_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = ClientSettings(
        target="my-endpoint",
        region="us-east-1",
        endpoint_url=shared_server,
        target_model="u1.tar.gz",
    )
    record = exchange("sagemaker", settings)
    # The container reported generated_tokens in its last event.
    assert_streamed(record, source="usage")
    assert record.instance is not None and record.instance.endswith(":u1.tar.gz")


def test_classify_times_the_whole_exchange(shared_server: str) -> None:
    record = exchange("classify", ClientSettings(target=shared_server + "/classify"))
    assert record.ok
    assert record.first_token == record.end
    assert 49 <= (record.end - record.sent) * 1000 <= 80
    assert record.output_tokens == 0


def test_http_errors_become_error_kinds(timed_server) -> None:
    url = timed_server(fail_every=1)
    record = exchange("openai", ClientSettings(target=url))
    assert record.error == "http_503"
    assert "injected" in record.error_detail
    assert record.status == 503


def test_wrong_api_shows_as_404_or_bad_stream(timed_server) -> None:
    triton_only = timed_server(apis="triton")
    assert exchange("openai", ClientSettings(target=triton_only, model="m")).error == "http_404"
    record = exchange("openai", ClientSettings(target=triton_only + "/non-streaming", model="m"))
    assert record.error == "bad_stream"
    assert "text/event-stream" in record.error_detail


def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = exchange("openai", ClientSettings(target=f"http://127.0.0.1:{port}", model="m"))
    assert record.error == "connect"
    assert record.end is not None


def test_refused_grpc_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    record = exchange(
        "triton-grpc", ClientSettings(target=f"http://127.0.0.1:{port}", model="m", timeout=5)
    )
    assert record.error == "connect"
    assert record.end is not None


def test_grpc_target_urls_name_the_address_and_tls() -> None:
    from inferfleet.cli.bench.clients.triton_grpc import grpc_address

    assert grpc_address("http://127.0.0.1:8001") == ("127.0.0.1:8001", False)
    assert grpc_address("https://llm.internal.example") == ("llm.internal.example:443", True)
    assert grpc_address("http://[::1]:8001/") == ("[::1]:8001", False)


def test_slow_answer_is_a_timeout(timed_server) -> None:
    url = timed_server(ttft_ms=2000)
    record = exchange("openai", ClientSettings(target=url, model="m", timeout=0.3))
    assert record.error == "timeout"


@pytest.mark.parametrize("api", ["openai", "triton", "sagemaker"])
def test_the_instance_is_read_from_the_stream_when_no_header_names_it(
    timed_server, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    url = timed_server(ttft_ms=5, itl_ms=2, instances=2, instance_in_body=True)
    settings = (
        ClientSettings(target="e", region="us-east-1", endpoint_url=url, target_model="m.tar.gz")
        if api == "sagemaker"
        else ClientSettings(target=url)
    )
    records = [exchange(api, settings) for _ in range(2)]
    assert all(record.ok for record in records)
    suffix = ":m.tar.gz" if api == "sagemaker" else ""
    # The two exchanges are the server's arrivals 1 and 2: instances 1 and 0 of 2.
    assert sorted(record.instance for record in records) == [f"inst-0{suffix}", f"inst-1{suffix}"]


def test_each_api_module_registers_the_client_of_its_name() -> None:
    import importlib

    from inferfleet.cli.bench.clients import api_names
    from inferfleet.cli.bench.clients.base import Client

    assert set(api_names()) == {"openai", "triton", "triton-grpc", "sagemaker", "classify"}
    for name in api_names():
        # Module names take '_' where the API has '-': triton_grpc.py serves triton-grpc.
        importlib.import_module(f"inferfleet.cli.bench.clients.{name.replace('-', '_')}")
        assert Client.registry[name].api == name
        assert type(client_for(name, ClientSettings(target="http://127.0.0.1:9"))).api == name
    with pytest.raises(ValueError, match="unknown api grpc"):
        client_for("grpc", ClientSettings(target="http://127.0.0.1:9"))
