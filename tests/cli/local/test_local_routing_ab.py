"""A/B of nginx least_conn vs random over emulated continuous-batching servers.

20 closed-loop users over 5 servers of 4 slots each: capacity matches demand,
so any imbalance queues requests on one server while slots idle on another.
Output lengths are lognormal (median 40 tokens, sigma 0.8), as in chat
traffic, so a request queued behind long ones waits long. Both arms replay the
same seeded length sequence per user on the same fleet.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from local_sse_client import LoadResult, closed_loop, percentile

from inferfleet.cli.local.fleet import LocalFleet
from inferfleet.cli.sizing.profile import ServerProfile

pytestmark = pytest.mark.slow

USERS = 20
SERVERS = 5
WINDOW_S = 8.0
PROFILE = ServerProfile()  # 4 slots, decode 20 ms + 2 ms per sequence, prefill 5 ms + 0.1 ms/token


def lognormal_length(rng: random.Random) -> int:
    return max(4, min(256, round(rng.lognormvariate(math.log(40), 0.8))))


def run_arm(fleet: LocalFleet, routing: str) -> LoadResult:
    fleet.set_routing(routing)
    return asyncio.run(
        closed_loop(
            fleet.url,
            users=USERS,
            duration_s=WINDOW_S,
            output_tokens=lognormal_length,
            prompt_tokens=200,
            seed=11,
        )
    )


def test_least_conn_beats_random_on_throughput_and_ttft_p99() -> None:
    with LocalFleet(servers=SERVERS, profile=PROFILE) as fleet:
        least_conn = run_arm(fleet, "least_outstanding_requests")
        random_arm = run_arm(fleet, "random")

    figures = {
        name: {
            "tokens_per_min": round(arm.tokens_per_min),
            "ttft_p99_s": round(percentile(arm.ttfts_s, 0.99), 3),
            "e2e_p99_s": round(percentile([r.e2e_s for r in arm.requests], 0.99), 3),
            "requests": len(arm.requests),
        }
        for name, arm in (("least_conn", least_conn), ("random", random_arm))
    }
    print(f"A/B {USERS} users x {SERVERS} servers, {WINDOW_S:.0f} s per arm: {figures}")
    for arm in (least_conn, random_arm):
        assert {r.instance for r in arm.requests} == {f"emulator-{i}" for i in range(SERVERS)}
    capacity = SERVERS * PROFILE.full_batch_tokens_per_s() * 60
    assert least_conn.tokens_per_min < capacity * 1.02, figures
    assert least_conn.tokens_per_min > 1.08 * random_arm.tokens_per_min, figures
    assert figures["least_conn"]["ttft_p99_s"] * 3 < figures["random"]["ttft_p99_s"], figures
