"""Emulated servers follow their timing model: prefill, batch-dependent decode, queueing.

Each test talks to one emulator directly (no nginx) from this process while the
emulator runs in its own process. Bounds allow for a loaded two-core machine:
lower bounds are tight (a sleep never ends early), upper bounds are loose, and
comparisons between conditions carry the weight.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import urllib.request

import aiohttp
import pytest
from local_sse_client import Streamed, closed_loop, stream

from inferfleet.cli.local.fleet import LocalFleet
from inferfleet.cli.sizing.profile import ServerProfile

pytestmark = pytest.mark.slow


async def concurrent(url: str, bodies: list[dict[str, object]]) -> list[Streamed]:
    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(stream(session, url, body) for body in bodies)))


def test_ttft_follows_prefill_cost_per_prompt_token() -> None:
    profile = ServerProfile(prefill_base_s=0.05, prefill_per_token_s=0.001)
    with LocalFleet(servers=1, profile=profile) as fleet:
        url = fleet.instance_urls[0]
        short, long = (
            asyncio.run(concurrent(url, [{"prompt": list(range(n)), "max_tokens": 2}]))[0]
            for n in (20, 300)
        )

    expected_short, expected_long = profile.prefill_s(20), profile.prefill_s(300)
    assert expected_short <= short.ttft_s < expected_short + 0.2
    assert expected_long <= long.ttft_s < expected_long + 0.2
    assert long.ttft_s - short.ttft_s == pytest.approx(0.28, abs=0.1)


def test_inter_token_latency_grows_with_the_active_batch() -> None:
    profile = ServerProfile(
        slots=8, decode_base_s=0.01, decode_per_sequence_s=0.01, prefill_base_s=0.0
    )
    body = {"prompt": "hi", "max_tokens": 30}
    with LocalFleet(servers=1, profile=profile) as fleet:
        url = fleet.instance_urls[0]
        alone = asyncio.run(concurrent(url, [body]))[0]
        batch = asyncio.run(concurrent(url, [body] * 8))

    itl_alone = statistics.median(alone.itls_s)
    itl_batch = statistics.median(itl for result in batch for itl in result.itls_s)
    assert profile.decode_step_s(1) * 0.95 <= itl_alone < profile.decode_step_s(1) + 0.03
    assert profile.decode_step_s(8) * 0.95 <= itl_batch < profile.decode_step_s(8) + 0.05
    assert itl_batch > 2.5 * itl_alone


def test_requests_beyond_the_slots_wait_in_a_queue() -> None:
    profile = ServerProfile(
        slots=2, decode_base_s=0.01, decode_per_sequence_s=0.01, prefill_base_s=0.0
    )
    body = {"prompt": "hi", "max_tokens": 20}
    with LocalFleet(servers=1, profile=profile) as fleet:
        url = fleet.instance_urls[0]

        async def load_and_watch() -> tuple[list[Streamed], list[dict[str, int]]]:
            async with aiohttp.ClientSession() as session:
                requests = [asyncio.ensure_future(stream(session, url, body)) for _ in range(3)]
                await asyncio.sleep(0.15)
                async with session.get(f"{url}/health") as response:
                    during = await response.json()
                return list(await asyncio.gather(*requests)), [during]

        results, (during,) = asyncio.run(load_and_watch())

    assert (during["active"], during["queued"]) == (2, 1)
    first_two, last = (
        sorted(results, key=lambda r: r.ttft_s)[:2],
        max(results, key=lambda r: r.ttft_s),
    )
    # The third request starts only when one of the first two has produced all its tokens.
    assert last.ttft_s >= 0.95 * min(r.e2e_s for r in first_two)
    assert last.ttft_s > 5 * max(r.ttft_s for r in first_two)


def _mean_ttft(url: str, users: int) -> float:
    result = asyncio.run(
        closed_loop(
            url,
            users=users,
            duration_s=2.5,
            output_tokens=lambda rng: rng.randint(10, 40),
            prompt_tokens=100,
            seed=users,
        )
    )
    return statistics.fmean(result.ttfts_s)


def test_static_batching_ttft_grows_with_concurrency_continuous_stays_flat() -> None:
    profile = ServerProfile(
        slots=4, prefill_base_s=0.04, decode_base_s=0.02, decode_per_sequence_s=0.005
    )
    ttft: dict[tuple[str, int], float] = {}
    for mode in ("continuous", "static"):
        with LocalFleet(servers=1, profile=profile.model_copy(update={"batching": mode})) as fleet:
            _assert_mode(fleet.instance_urls[0], mode)
            for users in (1, 4):
                ttft[mode, users] = _mean_ttft(fleet.instance_urls[0], users)

    static_growth = ttft["static", 4] / ttft["static", 1]
    continuous_growth = ttft["continuous", 4] / ttft["continuous", 1]
    assert static_growth > 4, ttft
    assert continuous_growth < 3, ttft
    assert ttft["static", 4] > 3 * ttft["continuous", 4], ttft


def _assert_mode(url: str, mode: str) -> None:
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        assert json.loads(response.read())["mode"] == mode
