"""The emulated servers speak the OpenAI completions API, through nginx and directly."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from local_sse_client import Streamed, stream

from inferfleet.cli.local.fleet import LocalFleet


def post_json(url: str, body: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def streamed(base_url: str, body: dict[str, Any], path: str = "/v1/completions") -> Streamed:
    async def once() -> Streamed:
        async with aiohttp.ClientSession() as session:
            return await stream(session, base_url, body, path=path)

    return asyncio.run(once())


def test_streamed_completion_has_exactly_max_tokens_then_usage_and_done(
    api_fleet: LocalFleet,
) -> None:
    body = {
        "model": "m",
        "prompt": "x" * 400,
        "max_tokens": 7,
        "stream_options": {"include_usage": True},
    }
    result = streamed(api_fleet.url, body)

    assert result.status == 200
    assert result.headers["Content-Type"].startswith("text/event-stream")
    assert result.headers["X-Inferfleet-Emulated"] == "true"
    assert result.headers["X-Inferfleet-Instance"] in {"emulator-0", "emulator-1"}
    assert result.headers["X-Inferfleet-Routing"] == "round_robin"
    assert result.done
    token_chunks = [c for c in result.chunks if c["choices"]]
    assert len(token_chunks) == 7
    assert all(c["object"] == "text_completion" for c in result.chunks)
    assert [c["choices"][0]["finish_reason"] for c in token_chunks] == [None] * 6 + ["length"]
    assert result.chunks[-1]["choices"] == []
    # 400 characters at 4 characters per token.
    assert result.usage == {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}


def test_usage_chunk_only_when_asked(api_fleet: LocalFleet) -> None:
    result = streamed(api_fleet.url, {"model": "m", "prompt": "hi", "max_tokens": 3})

    assert result.done
    assert result.usage is None
    assert len(result.chunks) == 3


def test_streamed_chat_sends_role_then_content_deltas(api_fleet: LocalFleet) -> None:
    body = {
        "model": "chat-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello there"}]},
        ],
        "max_completion_tokens": 5,
        "stream_options": {"include_usage": True},
    }
    result = streamed(api_fleet.url, body, path="/v1/chat/completions")

    token_chunks = [c for c in result.chunks if c["choices"]]
    assert len(token_chunks) == 5
    assert {c["object"] for c in result.chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in result.chunks} == {"chat-model"}
    assert token_chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["choices"][0]["delta"]["content"] for c in token_chunks)
    assert "role" not in token_chunks[1]["choices"][0]["delta"]
    # Two messages: ceil(8/4) + ceil(11/4) content tokens plus 4 template tokens each.
    assert result.usage == {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18}


def test_non_streamed_completion_and_chat(api_fleet: LocalFleet) -> None:
    status, headers, body = post_json(
        f"{api_fleet.url}/v1/completions", {"prompt": [5, 6, 7], "max_tokens": 9}
    )
    assert status == 200
    assert headers["X-Inferfleet-Emulated"] == "true"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
    assert len(body["choices"][0]["text"].split()) == 9
    assert body["choices"][0]["finish_reason"] == "length"

    status, _, body = post_json(
        f"{api_fleet.url}/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )
    assert status == 200
    assert body["object"] == "chat.completion"
    assert len(body["choices"][0]["message"]["content"].split()) == 4


def test_default_max_tokens_is_the_timing_default(api_fleet: LocalFleet) -> None:
    _, _, body = post_json(f"{api_fleet.url}/v1/completions", {"prompt": "hi"})

    assert body["usage"]["completion_tokens"] == api_fleet.profile.default_max_tokens


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 5000}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": "7"}, "max_tokens"),
        ({"max_tokens": 3}, "prompt"),
        ({"prompt": ["a", "b"], "max_tokens": 3}, "prompt"),
        ({"prompt": "hi", "n": 2}, "n"),
        ({"prompt": "hi", "stream": "yes"}, "stream"),
        (b"{not json", None),
    ],
)
def test_bad_requests_get_openai_style_400(
    api_fleet: LocalFleet, body: Any, param: str | None
) -> None:
    status, _, answer = post_json(f"{api_fleet.url}/v1/completions", body)

    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param


def test_chat_without_messages_is_rejected(api_fleet: LocalFleet) -> None:
    status, _, answer = post_json(f"{api_fleet.url}/v1/chat/completions", {"messages": []})

    assert status == 400
    assert answer["error"]["param"] == "messages"


def test_models_health_ready_and_metrics_say_emulated(api_fleet: LocalFleet) -> None:
    instance = api_fleet.instance_urls[1]
    _, _, models = get(f"{instance}/v1/models")
    assert models and json.loads(models)["data"][0] == {
        "id": "emulated-llm",
        "object": "model",
        "created": 0,
        "owned_by": "inferfleet",
        "emulated": True,
    }
    status, headers, ready = get(f"{instance}/ready")
    assert (status, json.loads(ready)) == (200, {"ready": True})
    assert headers["X-Inferfleet-Instance"] == "emulator-1"

    before = json.loads(get(f"{instance}/health")[2])
    assert before["emulated"] is True
    assert before["instance"] == "emulator-1"
    assert (before["mode"], before["slots"]) == ("continuous", 4)
    post_json(f"{instance}/v1/completions", {"prompt": "hi", "max_tokens": 2})
    after = json.loads(get(f"{instance}/health")[2])
    assert after["served"] == before["served"] + 1
    assert after["generated_tokens"] == before["generated_tokens"] + 2

    metrics = get(f"{instance}/metrics")[2].decode()
    label = '{instance="emulator-1"}'
    assert f"inferfleet_emulator_served_requests_total{label} {after['served']}" in metrics
    assert f"inferfleet_emulator_active_sequences{label} 0" in metrics
    assert f"inferfleet_emulator_queued_requests{label} 0" in metrics


def test_client_that_goes_away_frees_its_slot(api_fleet: LocalFleet) -> None:
    instance = api_fleet.instance_urls[0]

    async def start_and_abandon() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{instance}/v1/completions",
                json={"prompt": "hi", "max_tokens": 4000, "stream": True},
            ) as response,
        ):
            await response.content.readline()
            assert json.loads(get(f"{instance}/health")[2])["active"] == 1

    asyncio.run(start_and_abandon())
    deadline = time.monotonic() + 5
    while json.loads(get(f"{instance}/health")[2])["active"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(get(f"{instance}/health")[2])["active"] == 0
