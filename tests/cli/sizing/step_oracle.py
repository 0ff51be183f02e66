"""A step-by-step reference simulation: the local emulator's scheduler loop, one event per step.

The simulator under test jumps over whole decode runs; this oracle does not. It
follows ``cli/local/emulator.py`` line by line (continuous: prefill joiners, else
decode the batch; static: prefill a batch, decode it to its longest sequence) and
records every token's time, so the fast simulator's results can be checked against
it exactly.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

from inferfleet.cli.sizing.profile import ServerProfile


@dataclass
class OracleRequest:
    sent: float
    prompt: int
    output: int
    replica: int = -1
    tokens: list[float] = field(default_factory=list)  # client-side arrival of each token
    user: int = -1


@dataclass
class _Server:
    profile: ServerProfile
    waiting: deque = field(default_factory=deque)
    batch: list = field(default_factory=list)
    busy: bool = False


def run_oracle(
    profiles: list[ServerProfile],
    *,
    routing: str,
    prompts: list[int],
    outputs: list[int],
    arrivals: list[float] | None = None,
    users: int | None = None,
    send_until: float | None = None,
    network_s: float = 0.0,
    seed: int = 0,
) -> list[OracleRequest]:
    servers = [_Server(profile) for profile in profiles]
    requests: list[OracleRequest] = []
    outstanding = [0] * len(servers)
    heap: list = []
    counter = 0
    rr = 0
    rng = random.Random(seed)

    def push(time: float, kind: str, *payload: object) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(heap, (time, counter, kind, payload))

    def route() -> int:
        nonlocal rr
        count = len(servers)
        if routing == "random":
            return rng.randrange(count)
        if routing == "round_robin":
            target, rr = rr, (rr + 1) % count
            return target
        order = [(rr + k) % count for k in range(count)]
        target = min(order, key=lambda index: outstanding[index])
        rr = (target + 1) % count
        return target

    def send(now: float, user: int) -> None:
        if user >= 0 and send_until is not None and now >= send_until:
            return
        slot = len(requests) % len(prompts)
        request = OracleRequest(now, prompts[slot], outputs[slot], user=user)
        request.replica = route()
        outstanding[request.replica] += 1
        requests.append(request)
        push(now + network_s, "receive", request)

    def emit(server_index: int, request: OracleRequest, now: float) -> None:
        request.tokens.append(now + network_s)
        if len(request.tokens) == request.output:
            outstanding[server_index] -= 1
            if request.user >= 0:
                push(now + network_s, "send", request.user)

    def schedule(index: int, now: float) -> None:
        server = servers[index]
        profile = server.profile
        if profile.batching == "static":
            if not server.waiting:
                server.busy = False
                return
            batch = [
                server.waiting.popleft() for _ in range(min(profile.slots, len(server.waiting)))
            ]
            server.busy = True
            push(now + profile.prefill_s(sum(r.prompt for r in batch)), "prefill", index, batch)
            return
        server.batch = [r for r in server.batch if len(r.tokens) < r.output]
        free = profile.slots - len(server.batch)
        if server.waiting and free > 0:
            joining = [server.waiting.popleft() for _ in range(min(free, len(server.waiting)))]
            server.batch += joining
            server.busy = True
            push(now + profile.prefill_s(sum(r.prompt for r in joining)), "prefill", index, joining)
        elif server.batch:
            server.busy = True
            push(now + profile.decode_step_s(len(server.batch)), "decode", index, server.batch)
        else:
            server.busy = False

    for offset in arrivals or []:
        push(offset, "send", -1)
    for user in range(users or 0):
        push(0.0, "send", user)
    while heap:
        now, _, kind, payload = heapq.heappop(heap)
        if kind == "send":
            send(now, payload[0])
        elif kind == "receive":
            request = payload[0]
            server = servers[request.replica]
            server.waiting.append(request)
            if not server.busy:
                schedule(request.replica, now)
        elif kind == "prefill":
            index, joined = payload
            for request in joined:
                emit(index, request, now)
            profile = servers[index].profile
            if profile.batching == "static":
                size = len(joined)
                if any(len(r.tokens) < r.output for r in joined):
                    push(now + profile.decode_step_s(size), "static", index, joined)
                else:
                    schedule(index, now)
            else:
                schedule(index, now)
        elif kind == "decode":
            index, batch = payload
            for request in list(batch):
                emit(index, request, now)
            schedule(index, now)
        else:  # a static batch's decode step, at the batch's full size
            index, batch = payload
            for request in batch:
                if len(request.tokens) < request.output:
                    emit(index, request, now)
            profile = servers[index].profile
            if any(len(r.tokens) < r.output for r in batch):
                push(now + profile.decode_step_s(len(batch)), "static", index, batch)
            else:
                schedule(index, now)
    return requests


def gaps_ms(request: OracleRequest) -> list[float]:
    return [(b - a) * 1000.0 for a, b in zip(request.tokens, request.tokens[1:], strict=False)]


def tokens_in(requests: list[OracleRequest], start: float, end: float) -> int:
    return sum(1 for r in requests for t in r.tokens if start <= t <= end)


def close(a: float, b: float, tolerance: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)
