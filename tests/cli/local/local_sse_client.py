"""A small aiohttp client for the tests: streamed completions and a closed-loop load."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Streamed:
    """One streamed request as the client saw it."""

    status: int
    headers: dict[str, str]
    sent_at: float
    token_times: list[float] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False

    @property
    def instance(self) -> str:
        return self.headers["X-Inferfleet-Instance"]

    @property
    def ttft_s(self) -> float:
        return self.token_times[0] - self.sent_at

    @property
    def itls_s(self) -> list[float]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:], strict=False)]

    @property
    def e2e_s(self) -> float:
        return self.token_times[-1] - self.sent_at

    @property
    def usage(self) -> dict[str, int] | None:
        return next((c["usage"] for c in self.chunks if c.get("usage")), None)


async def stream(
    session: aiohttp.ClientSession,
    base_url: str,
    body: dict[str, Any],
    *,
    path: str = "/v1/completions",
    on_first_token: Callable[[], None] | None = None,
) -> Streamed:
    """POST with ``stream: true``; record when each token chunk arrived."""
    sent_at = time.monotonic()
    async with session.post(f"{base_url}{path}", json={**body, "stream": True}) as response:
        result = Streamed(response.status, dict(response.headers), sent_at)
        async for raw in response.content:
            line = raw.strip()
            if not line.startswith(b"data: "):
                continue
            payload = line.removeprefix(b"data: ")
            if payload == b"[DONE]":
                result.done = True
                continue
            chunk = json.loads(payload)
            result.chunks.append(chunk)
            if chunk["choices"]:
                result.token_times.append(time.monotonic())
                if on_first_token is not None and len(result.token_times) == 1:
                    on_first_token()
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class LoadResult:
    requests: list[Streamed]
    tokens_in_window: int
    window_s: float

    @property
    def tokens_per_min(self) -> float:
        return self.tokens_in_window / self.window_s * 60

    @property
    def ttfts_s(self) -> list[float]:
        return [r.ttft_s for r in self.requests]


async def closed_loop(
    base_url: str,
    *,
    users: int,
    duration_s: float,
    output_tokens: Callable[[random.Random], int],
    prompt_tokens: int,
    seed: int,
) -> LoadResult:
    """``users`` each send a request as soon as their previous one ends, for ``duration_s``.

    Throughput counts the tokens that arrived inside the window; every user draws
    its output lengths from its own seeded generator, so two runs see the same
    length sequence per user.
    """
    requests: list[Streamed] = []
    prompt = list(range(prompt_tokens))

    async def user(index: int, session: aiohttp.ClientSession, deadline: float) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            body = {"model": "m", "prompt": prompt, "max_tokens": output_tokens(rng)}
            requests.append(await stream(session, base_url, body))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        deadline = start + duration_s
        await asyncio.gather(*(user(i, session, deadline) for i in range(users)))
    tokens = sum(start <= t <= deadline for r in requests for t in r.token_times)
    return LoadResult(requests, tokens, duration_s)
