"""A discrete-event simulation of server replicas behind one load balancer.

Each replica follows its :class:`~inferfleet.cli.sizing.profile.ServerProfile`
exactly as the local emulator's scheduler does (prefill steps for joining
prompts, decode steps over the batch, FIFO queue beyond the slots; static
batches run to their longest sequence). The balancer routes each request when
it is sent: least outstanding requests (nginx ``least_conn`` and the ALB
algorithm: fewest requests in flight, ties taken in turn), random, or round
robin.

A decode run is one event, not one per token: between two changes of a
replica's batch every step has the same length, so the simulation jumps to the
first sequence that finishes (or to the step boundary after an arrival that can
join the batch). Events grow with requests, not tokens, which is what lets a
thousand replicas run for ten simulated minutes in seconds.

Times are seconds from the start of the run. A request travels ``network_s``
from the client to the replica and its tokens travel ``network_s`` back, so
client-side times are the replica's plus one ``network_s``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np

from inferfleet.cli.sizing.autoscaling import RegionScaler
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.constructs.routing import Routing

_SEND, _RECEIVE, _BOUNDARY, _FINISH, _CONTROL, _READY = 0, 1, 2, 3, 4, 5
_IDLE, _PREFILL, _DECODE, _STATIC = 0, 1, 2, 3
# Boundaries computed from a run's start and its step length may differ from the
# arrival time that caused them by rounding only.
_EPSILON = 1e-9
# Added to the requests in flight of a replica out of service, so least outstanding
# requests never picks it while any replica serves (and costs nothing per request).
_OUT_OF_SERVICE = 1 << 40


@dataclass(frozen=True)
class Load:
    """Closed loop (``users`` send again as soon as an answer ends, until ``send_until``)
    or open loop (requests sent at ``arrivals``, seconds from the start, ascending).

    Closed loop with ``conversations`` (turns of each, tiling the request pool as the
    bench's workload tiles it): a user takes the next conversation and sends its turns
    in order, ``think_s`` after each answer, then takes the next one.
    """

    users: int | None = None
    send_until: float | None = None
    arrivals: np.ndarray | None = None
    conversations: np.ndarray | None = None
    think_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.users is None) == (self.arrivals is None):
            raise ValueError("a load is either closed loop (users) or open loop (arrivals)")
        if self.users is not None and self.send_until is None:
            raise ValueError("a closed-loop load needs send_until")


@dataclass
class SimulatedRun:
    """What the client of a simulated run would have recorded, request by request."""

    replica_names: list[str]
    sent: np.ndarray
    first_token: np.ndarray
    end: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    replica: np.ndarray
    measured: np.ndarray
    window: tuple[float, float]
    tokens_in_window: np.ndarray  # per replica
    itl_values_s: np.ndarray
    itl_counts: np.ndarray
    events: int
    wall_s: float
    horizon_s: float = field(default=0.0)
    # Per request: its index in the workload's pool order (as the bench numbers it), and
    # with conversations its conversation and turn.
    request_index: np.ndarray | None = None
    conversation: np.ndarray | None = None
    turn: np.ndarray | None = None

    @property
    def last_token(self) -> np.ndarray:
        """The last token arrives with the end of the stream."""
        return self.end

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else float("inf")


class _Replica:
    """One replica's scheduler state.

    A continuous batch is kept as a heap of (decode step at which the sequence emits
    its last token, request), against ``steps_done``, so a decode run costs the same
    whatever the batch size. ``groups`` holds [last emission time, measured sequences]
    for the batch: sequences stalled by a prefill step share one irregular gap.
    """

    __slots__ = (
        "db",
        "ds",
        "finishing",
        "groups",
        "index",
        "joining",
        "measured",
        "pb",
        "planned",
        "pt",
        "slots",
        "state",
        "static",
        "step",
        "steps_done",
        "t0",
        "version",
        "waiting",
    )

    def __init__(self, index: int, profile: ServerProfile) -> None:
        self.index = index
        self.slots = profile.slots
        self.pb, self.pt = profile.prefill_base_s, profile.prefill_per_token_s
        self.db, self.ds = profile.decode_base_s, profile.decode_per_sequence_s
        self.static = profile.batching == "static"
        self.finishing: list[tuple[int, int]] = []
        self.steps_done = 0
        self.measured = 0
        self.groups: list[list] = []
        self.joining: list[int] = []
        self.waiting: deque[int] = deque()
        self.state = _IDLE
        self.t0 = 0.0
        self.step = 0.0
        self.planned = 0
        self.version = 0


class Simulation:
    """Replicas behind one balancer; :meth:`run` replays one load against them.

    ``prompt_tokens`` and ``output_tokens`` give request ``i`` its sizes (cycled
    when there are fewer entries than requests, as the bench's workload pool is).
    ``window`` is where tokens/min is counted (client time); requests sent before
    ``warmup_s`` are not measured. ``replayed_routing`` sends request ``i`` (in send
    order) to replica ``replayed_routing[i]``, as a measured run did, instead of
    drawing it from the policy: with ``random`` that replays the balancer's own draws.
    """

    def __init__(
        self,
        replicas: Sequence[ServerProfile],
        *,
        routing: str = "least_outstanding_requests",
        replica_names: Sequence[str] | None = None,
        network_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not replicas:
            raise ValueError("a simulation needs at least one replica")
        self.profiles = list(replicas)
        self.routing = Routing.parse(routing)
        self.names = list(replica_names or (f"replica-{i}" for i in range(len(replicas))))
        self.network_s = network_s
        self.seed = seed

    def run(
        self,
        load: Load,
        *,
        prompt_tokens: np.ndarray,
        output_tokens: np.ndarray,
        warmup_s: float = 0.0,
        window: tuple[float, float] | None = None,
        replayed_routing: Sequence[int] = (),
        scaler: RegionScaler | None = None,
    ) -> SimulatedRun:
        """``scaler`` decides, every period until the window ends, which replicas serve."""
        started = perf_counter()
        state = _Run(self, load, prompt_tokens, output_tokens, warmup_s, window, replayed_routing)
        if scaler is not None:
            state.attach(scaler)
        state.loop()
        return state.result(perf_counter() - started)


class _Run:
    """The mutable state of one simulated run; methods are the event handlers."""

    def __init__(
        self,
        sim: Simulation,
        load: Load,
        prompt_tokens: np.ndarray,
        output_tokens: np.ndarray,
        warmup_s: float,
        window: tuple[float, float] | None,
        replayed_routing: Sequence[int],
    ) -> None:
        self.sim = sim
        self.assignments = list(replayed_routing)
        if self.assignments and not 0 <= min(self.assignments) <= max(self.assignments) < len(
            sim.profiles
        ):
            raise ValueError("replayed_routing names a replica the simulation does not have")
        self.load = load
        self.replicas = [_Replica(i, p) for i, p in enumerate(sim.profiles)]
        self.pool_prompt = [int(v) for v in prompt_tokens]
        self.pool_output = [int(v) for v in output_tokens]
        if not self.pool_prompt or len(self.pool_prompt) != len(self.pool_output):
            raise ValueError("prompt_tokens and output_tokens need the same non-zero length")
        if min(self.pool_output) < 1:
            raise ValueError("every request produces at least one token")
        self.net = sim.network_s
        self.warmup_s = warmup_s
        self.window = window or (warmup_s, math.inf)
        self.rng = random.Random(sim.seed)
        self.outstanding = np.zeros(len(self.replicas), dtype=np.int64)
        self.rr_next = 0
        # Replicas the balancer may pick; a scaler changes them as instances come and go.
        self.serving = [True] * len(self.replicas)
        self.routable = list(range(len(self.replicas)))
        self.scaler: RegionScaler | None = None
        self.sent_since_tick = 0
        self.ready_version = [0] * len(self.replicas)
        self.heap: list[tuple] = []
        self.counter = 0
        self.events = 0
        # Per request, in the order sent.
        self.sent: list[float] = []
        self.first: list[float] = []
        self.end: list[float] = []
        self.prompt: list[int] = []
        self.output: list[int] = []
        self.where: list[int] = []
        self.measured: list[bool] = []
        self.user_of: list[int] = []
        self.index: list[int] = []
        self.conversation_of: list[int] = []
        self.turn_of: list[int] = []
        # Closed loop: each user's conversation as [next request index, its turn, turns
        # left, conversation number]; conversations go to users in the order they come free.
        pool = len(self.pool_prompt)
        self.turns = (
            [int(v) for v in load.conversations] if load.conversations is not None else [1] * pool
        )
        if sum(self.turns) != pool or min(self.turns) < 1:
            raise ValueError("conversations must tile the request pool with turns of 1 or more")
        self.starts = [0]
        for turns in self.turns[:-1]:
            self.starts.append(self.starts[-1] + turns)
        self.next_conversation = 0
        self.walking: dict[int, list[int]] = {}
        self.itl_regular: dict[float, int] = {}
        self.itl_irregular: list[float] = []
        self.itl_irregular_counts: list[int] = []
        self.window_tokens = [0.0] * len(self.replicas)

    def attach(self, scaler: RegionScaler) -> None:
        if scaler.replica_count != len(self.replicas):
            raise ValueError("the scaler lays out a different number of replicas")
        self.scaler = scaler
        for replica, serving in enumerate(scaler.serving()):
            if not serving:
                self.take_out(replica)
        if not self.routable:
            raise ValueError("no replica serves at the start")
        self.push(scaler.period_s, _CONTROL, 0)

    # --- the event queue ---------------------------------------------------------

    def push(self, time: float, kind: int, a: int, b: int = 0) -> None:
        self.counter += 1
        heapq.heappush(self.heap, (time, self.counter, kind, a, b))

    def loop(self) -> None:
        load = self.load
        # Open-loop arrivals are merged in order rather than pushed: the heap then
        # holds about one event per replica, not one per request.
        arrivals = load.arrivals.tolist() if load.arrivals is not None else []
        arrivals.append(math.inf)
        for user in range(load.users or 0):
            self.push(0.0, _SEND, user)
        heap = self.heap
        pop = heapq.heappop
        replicas = self.replicas
        next_arrival, position = arrivals[0], 0
        events = 0
        while heap or next_arrival < math.inf:
            events += 1
            if not heap or next_arrival <= heap[0][0]:
                self.send(-1, next_arrival)
                position += 1
                next_arrival = arrivals[position]
                continue
            time, _, kind, a, b = pop(heap)
            if kind == _BOUNDARY:
                replica = replicas[a]
                if b == replica.version:
                    self.boundary(replica, time)
            elif kind == _RECEIVE:
                self.receive(replicas[b], a, time)
            elif kind == _SEND:
                self.send(a, time)
            elif kind == _FINISH:
                self.finish(a, time)
            elif kind == _CONTROL:
                self.control(time)
            elif b == self.ready_version[a]:
                self.bring_in(a)
        self.events = events

    # --- client and balancer -----------------------------------------------------

    def send(self, user: int, now: float) -> None:
        load = self.load
        if user >= 0 and load.send_until is not None and now >= load.send_until:
            return
        request = len(self.sent)
        index, conversation, turn = self.next_index(user, request)
        slot = index % len(self.pool_prompt)
        self.index.append(index)
        self.conversation_of.append(conversation)
        self.turn_of.append(turn)
        self.sent.append(now)
        self.first.append(math.nan)
        self.end.append(math.nan)
        self.prompt.append(self.pool_prompt[slot])
        self.output.append(self.pool_output[slot])
        self.measured.append(now >= self.warmup_s)
        self.user_of.append(user)
        target = self.route(request)
        self.sent_since_tick += 1
        self.where.append(target)
        self.outstanding[target] += 1
        if self.net:
            self.push(now + self.net, _RECEIVE, request, target)
        else:
            self.receive(self.replicas[target], request, now)

    def next_index(self, user: int, request: int) -> tuple[int, int, int]:
        """(pool index, conversation, turn) of the request ``user`` sends now."""
        if user < 0:
            return request, request, 0
        walk = self.walking.get(user)
        if walk is None or walk[2] == 0:
            number = self.next_conversation
            self.next_conversation += 1
            cycle, local = divmod(number, len(self.turns))
            start = cycle * len(self.pool_prompt) + self.starts[local]
            walk = self.walking[user] = [start, 0, self.turns[local], number]
        index, turn = walk[0], walk[1]
        walk[0], walk[1], walk[2] = index + 1, turn + 1, walk[2] - 1
        return index, walk[3], turn

    def route(self, request: int) -> int:
        if request < len(self.assignments):
            return self.assignments[request]
        routing = self.sim.routing
        count = len(self.replicas)
        if routing is Routing.RANDOM:
            return self.routable[self.rng.randrange(len(self.routable))]
        if routing is Routing.ROUND_ROBIN:
            turn = self.rr_next % len(self.routable)
            self.rr_next = (turn + 1) % len(self.routable)
            return self.routable[turn]
        # Fewest in flight; among equals, the next one in turn (nginx least_conn).
        outstanding, start = self.outstanding, self.rr_next
        after = outstanding[start:]
        target = start + int(after.argmin())
        if start:
            before = outstanding[:start]
            first = int(before.argmin())
            if before[first] < outstanding[target]:
                target = first
        self.rr_next = (target + 1) % count
        return target

    def finish(self, request: int, now: float) -> None:
        """The replica sent the last token at ``now``; the client has it ``net`` later."""
        self.end[request] = now + self.net
        self.outstanding[self.where[request]] -= 1
        user = self.user_of[request]
        if user >= 0:
            # A user thinks before the next turn of its conversation, not before a new one.
            think = self.load.think_s if self.walking[user][2] else 0.0
            self.push(now + self.net + think, _SEND, user)

    # --- instances in and out of service -------------------------------------------

    def control(self, now: float) -> None:
        """A period ended: the scaler records the region and says what changes."""
        scaler = self.scaler
        assert scaler is not None
        in_flight = [
            int(count) - (0 if serving else _OUT_OF_SERVICE)
            for count, serving in zip(self.outstanding.tolist(), self.serving, strict=True)
        ]
        queued = sum(len(replica.waiting) for replica in self.replicas)
        ready, taken_out = scaler.tick(now, self.sent_since_tick, queued, in_flight)
        self.sent_since_tick = 0
        for replica in taken_out:
            self.take_out(replica)
        for moment, replica in ready:
            self.push(moment, _READY, replica, self.ready_version[replica])
        if now + scaler.period_s <= self.window[1] + _EPSILON:
            self.push(now + scaler.period_s, _CONTROL, 0)

    def take_out(self, replica: int) -> None:
        """No new requests from now (what it holds it finishes); a pending start is void."""
        self.ready_version[replica] += 1
        if self.serving[replica]:
            self.serving[replica] = False
            self.outstanding[replica] += _OUT_OF_SERVICE
            self.routable.remove(replica)

    def bring_in(self, replica: int) -> None:
        if not self.serving[replica]:
            self.serving[replica] = True
            self.outstanding[replica] -= _OUT_OF_SERVICE
            self.routable.append(replica)
            self.routable.sort()

    # --- replicas ----------------------------------------------------------------

    def receive(self, replica: _Replica, request: int, now: float) -> None:
        replica.waiting.append(request)
        state = replica.state
        if state == _IDLE:
            self.decide(replica, now)
        elif state == _DECODE and len(replica.finishing) < replica.slots:
            # The request joins at the next step boundary: cut the run there.
            steps = max(1, math.ceil((now - replica.t0) / replica.step - _EPSILON))
            if steps < replica.planned:
                replica.planned = steps
                replica.version += 1
                self.push(
                    replica.t0 + steps * replica.step, _BOUNDARY, replica.index, replica.version
                )

    def boundary(self, replica: _Replica, now: float) -> None:
        finishing = replica.finishing
        if replica.state == _PREFILL:
            measured = 0
            for request in replica.joining:
                self.first[request] = now + self.net
                if self.output[request] > 1:
                    heapq.heappush(
                        finishing, (replica.steps_done + self.output[request] - 1, request)
                    )
                    measured += self.measured[request]
                else:
                    self.finish(request, now)
            self.count_window(replica, now, 0.0, 1, len(replica.joining))
            if measured:
                replica.groups.append([now, measured])
                replica.measured += measured
            replica.joining = []
        elif replica.state == _DECODE:
            steps, step, start = replica.planned, replica.step, replica.t0
            self.count_window(replica, start + step, step, steps, len(finishing))
            regular = 0
            for last, count in replica.groups:
                if last == start:
                    regular += steps * count
                else:
                    self.itl_irregular.append(start + step - last)
                    self.itl_irregular_counts.append(count)
                    regular += (steps - 1) * count
            if regular:
                self.itl_regular[step] = self.itl_regular.get(step, 0) + regular
            done = replica.steps_done = replica.steps_done + steps
            while finishing and finishing[0][0] == done:
                request = heapq.heappop(finishing)[1]
                replica.measured -= self.measured[request]
                self.finish(request, now)
            replica.groups = [[now, replica.measured]] if replica.measured else []
        self.decide(replica, now)

    def decide(self, replica: _Replica, now: float) -> None:
        """What the replica's scheduler does at a step boundary (or on waking up)."""
        if replica.static:
            self.start_static_batch(replica, now)
            return
        batch = len(replica.finishing)
        free = replica.slots - batch
        waiting = replica.waiting
        if waiting and free > 0:
            joining = []
            total = 0
            while waiting and len(joining) < free:
                request = waiting.popleft()
                joining.append(request)
                total += self.prompt[request]
            replica.joining = joining
            replica.state = _PREFILL
            replica.t0 = now
            self.push(
                now + replica.pb + replica.pt * total, _BOUNDARY, replica.index, replica.version
            )
        elif batch:
            step = replica.db + replica.ds * batch
            steps = replica.finishing[0][0] - replica.steps_done
            replica.state = _DECODE
            replica.t0, replica.step, replica.planned = now, step, steps
            self.push(now + steps * step, _BOUNDARY, replica.index, replica.version)
        else:
            replica.state = _IDLE

    def start_static_batch(self, replica: _Replica, now: float) -> None:
        waiting = replica.waiting
        if not waiting:
            replica.state = _IDLE
            return
        batch = [waiting.popleft() for _ in range(min(replica.slots, len(waiting)))]
        prefill_end = now + replica.pb + replica.pt * sum(self.prompt[r] for r in batch)
        # Finished rows stay in the padded batch: every step costs the full size.
        step = replica.db + replica.ds * len(batch)
        longest = 0
        for request in batch:
            tokens = self.output[request]
            longest = max(longest, tokens)
            self.first[request] = prefill_end + self.net
            self.count_window(replica, prefill_end, step, tokens, 1)
            if tokens > 1 and self.measured[request]:
                self.itl_regular[step] = self.itl_regular.get(step, 0) + tokens - 1
            self.push(prefill_end + (tokens - 1) * step, _FINISH, request)
        replica.state = _STATIC
        self.push(prefill_end + (longest - 1) * step, _BOUNDARY, replica.index, replica.version)

    def count_window(
        self, replica: _Replica, first: float, gap: float, times: int, per_time: int
    ) -> None:
        """Count tokens emitted at ``first + k * gap`` (k < ``times``), ``per_time`` at
        each instant, that reach the client inside the window."""
        low, high = self.window[0] - self.net, self.window[1] - self.net
        last = first + (times - 1) * gap
        if last < low or first > high:
            return
        if first >= low and last <= high:
            inside = times
        else:
            k_low = max(0, math.ceil((low - first) / gap - _EPSILON))
            k_high = min(times - 1, math.floor((high - first) / gap + _EPSILON))
            inside = max(0, k_high - k_low + 1)
        self.window_tokens[replica.index] += inside * per_time

    def result(self, wall_s: float) -> SimulatedRun:
        values = np.array(list(self.itl_regular) + self.itl_irregular, dtype=float)
        counts = np.array(
            list(self.itl_regular.values()) + self.itl_irregular_counts, dtype=np.int64
        )
        end = np.array(self.end, dtype=float)
        return SimulatedRun(
            replica_names=self.sim.names,
            sent=np.array(self.sent, dtype=float),
            first_token=np.array(self.first, dtype=float),
            end=end,
            prompt_tokens=np.array(self.prompt, dtype=np.int64),
            output_tokens=np.array(self.output, dtype=np.int64),
            replica=np.array(self.where, dtype=np.int64),
            measured=np.array(self.measured, dtype=bool),
            window=self.window,
            tokens_in_window=np.array(self.window_tokens, dtype=float),
            itl_values_s=values,
            itl_counts=counts,
            events=self.events,
            wall_s=wall_s,
            horizon_s=float(np.nanmax(end)) if end.size else 0.0,
            request_index=np.array(self.index, dtype=np.int64),
            conversation=np.array(self.conversation_of, dtype=np.int64)
            if self.load.conversations is not None
            else None,
            turn=np.array(self.turn_of, dtype=np.int64)
            if self.load.conversations is not None
            else None,
        )
