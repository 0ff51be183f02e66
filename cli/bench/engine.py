"""Load generation: closed-loop users or open-loop arrivals, one step at a time.

Closed loop: ``users`` coroutines each send a request, wait for the whole
answer, and send the next; they start together or spaced over a ramp. With
``--turns`` each user holds a conversation: its turns in order (after a think
time), then the next conversation. Open
loop: a dispatcher sends request ``k`` at its scheduled offset whatever the
server is doing; at most ``max_inflight`` are on the wire, later ones wait in
the client, and that wait counts in the schedule-relative latency (the
coordinated-omission correction); a step where one waited longer than
``--max-dispatch-lag-ms`` was no open loop and is marked invalid.

While a step runs, a monitor samples how late the event loop wakes up. With
the dispatch lag of open-loop arrivals, it tells whether the client, not the
server, set the pace. ``--workers N`` splits a step over N processes, each
with its own loop and connections.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import queue
import signal
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter, process_time

from inferfleet.cli.bench.clients import client_for
from inferfleet.cli.bench.clients.base import Client, ClientSettings
from inferfleet.cli.bench.config import MAX_REQUESTS_PER_STEP, MAX_TOKENS_PER_STEP
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.server_metrics import scrape
from inferfleet.cli.bench.trace import TraceArrivals
from inferfleet.cli.bench.workload import Arrivals, Workload
from inferfleet.cli.errors import UserError

LAG_SAMPLE_INTERVAL_S = 0.005
STOP_POLL_S = 0.05
PROGRESS_POLL_S = 0.25


@dataclass(slots=True)
class StepPlan:
    """One step for one process: a closed loop of ``users`` or a list of arrivals."""

    users: int | None = None
    # Closed loop: user j of this process starts at offset + j * spacing; the step holds
    # ``ramp`` (the whole run's, over every process) before warm-up and measuring.
    spacing: float = 0.0
    offset: float = 0.0
    ramp: float = 0.0
    duration: float | None = None
    requests: int | None = None
    warmup: float = 0.0
    arrivals: Arrivals | TraceArrivals | None = None
    max_inflight: int = 4096
    first_index: int = 0
    index_stride: int = 1
    start_at: float | None = None
    drain_timeout: float = 300.0
    max_requests: int = MAX_REQUESTS_PER_STEP
    max_tokens: int = MAX_TOKENS_PER_STEP
    # Prometheus pages scraped while the step runs (one process scrapes for all).
    metrics_urls: tuple[str, ...] = ()


@dataclass(slots=True)
class StepOutcome:
    records: list[RequestRecord]
    started: float
    measured_from: float
    finished: float
    loop_lag_ms: list[array] = field(default_factory=list)
    loop_lag_at: list[array] = field(default_factory=list)
    stopped: bool = False
    capped: bool = False
    # CPU the client processes used over the step (seconds, summed over processes),
    # and the whole machine's busy and total CPU time over the same span.
    process_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    machine_total_s: float = 0.0
    server_pages: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished - self.started)

    @staticmethod
    def merge(parts: list[StepOutcome]) -> StepOutcome:
        return StepOutcome(
            records=[record for part in parts for record in part.records],
            started=min(part.started for part in parts),
            measured_from=min(part.measured_from for part in parts),
            finished=max(part.finished for part in parts),
            loop_lag_ms=[lags for part in parts for lags in part.loop_lag_ms],
            loop_lag_at=[times for part in parts for times in part.loop_lag_at],
            stopped=any(part.stopped for part in parts),
            capped=any(part.capped for part in parts),
            process_cpu_s=sum(part.process_cpu_s for part in parts),
            # Every worker watched the same machine over about the same span.
            machine_busy_s=max(part.machine_busy_s for part in parts),
            machine_total_s=max(part.machine_total_s for part in parts),
            server_pages=[page for part in parts for page in part.server_pages],
        )


class StopFlag:
    """Set by Ctrl-C; read by the running step, in this process or a worker."""

    def __init__(self, event: object | None = None) -> None:
        self.event = event or multiprocessing.get_context("spawn").Event()

    def set(self) -> None:
        self.event.set()  # type: ignore[attr-defined]

    def is_set(self) -> bool:
        return self.event.is_set()  # type: ignore[attr-defined]


class Tally:
    """Completed requests of one process, read by the progress bar."""

    def __init__(self, shared: object | None = None, slot: int = 0) -> None:
        self._shared = shared
        self._slot = slot
        self.value = 0

    def add(self) -> None:
        if self._shared is None:
            self.value += 1
        else:
            self._shared[self._slot] += 1  # type: ignore[index]


async def run_step(
    plan: StepPlan, client: Client, workload: Workload, stop: StopFlag, tally: Tally
) -> StepOutcome:
    """Run one step of ``plan`` in the current event loop."""
    if plan.start_at is not None:
        await asyncio.sleep(max(0.0, plan.start_at - perf_counter()))
    lags, lag_times = array("d"), array("d")
    stopping = asyncio.Event()
    pages: list[tuple[float, dict[str, float]]] = []
    watchers = [
        asyncio.create_task(_sample_loop_lag(lags, lag_times)),
        asyncio.create_task(_watch_stop(stop, stopping)),
    ]
    if plan.metrics_urls:
        watchers.append(asyncio.create_task(scrape(client.session, plan.metrics_urls, pages)))
    started = perf_counter()
    cpu_before, machine_before = process_time(), machine_cpu()
    records: list[RequestRecord] = []
    memory = MemoryBudget(plan.max_requests, plan.max_tokens)
    if plan.arrivals is not None:
        load = _open_loop(plan, client, workload, records, started, tally, memory)
    else:
        load = _closed_loop(plan, client, workload, records, started, tally, memory)
    load_task = asyncio.create_task(load)
    stop_task = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({load_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stopped = stopping.is_set()
        if not load_task.done():
            load_task.cancel()
        await asyncio.gather(load_task, return_exceptions=True)
    finally:
        for task in (*watchers, stop_task):
            task.cancel()
        await asyncio.gather(*watchers, stop_task, return_exceptions=True)
    finished = max((record.end for record in records if record.end), default=perf_counter())
    machine_after = machine_cpu()
    return StepOutcome(
        records=records,
        started=started,
        measured_from=started + plan.ramp + plan.warmup,
        finished=finished,
        loop_lag_ms=[lags],
        loop_lag_at=[lag_times],
        stopped=stopped,
        capped=memory.exhausted,
        process_cpu_s=process_time() - cpu_before,
        machine_busy_s=machine_after[0] - machine_before[0],
        machine_total_s=machine_after[1] - machine_before[1],
        server_pages=pages,
    )


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat (0 elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [float(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return (total - idle) / ticks, total / ticks


class MemoryBudget:
    """Requests and requested tokens one step may hold in memory; past it, no more are sent."""

    def __init__(self, requests: int, tokens: int) -> None:
        self.requests, self.tokens = requests, tokens
        self.exhausted = False

    def take(self, output_tokens: int) -> bool:
        self.requests -= 1
        self.tokens -= output_tokens
        if self.requests < 0 or self.tokens < 0:
            self.exhausted = True
        return not self.exhausted


async def _closed_loop(
    plan: StepPlan,
    client: Client,
    workload: Workload,
    records: list[RequestRecord],
    started: float,
    tally: Tally,
    memory: MemoryBudget,
) -> None:
    assert plan.users is not None
    warm_end = started + plan.ramp + plan.warmup
    deadline = warm_end + plan.duration if plan.duration is not None else None
    budget = plan.requests
    ordinal = itertools.count()
    measured = 0

    think = workload.think_time_s
    numbered = workload.multi_turn

    async def user(number: int) -> None:
        nonlocal measured
        if plan.spacing or plan.offset:
            await asyncio.sleep(max(0.0, started + plan.offset + number * plan.spacing
                                    - perf_counter()))  # fmt: skip
        while True:
            # Conversations, not requests, are shared out: a user sends its turns in order.
            conversation = plan.first_index + next(ordinal) * plan.index_stride
            for turn, index in enumerate(workload.conversation(conversation)):
                if turn and think:
                    await asyncio.sleep(think)
                now = perf_counter()
                warm = now < warm_end
                if not warm:
                    if deadline is not None and now >= deadline:
                        return
                    if budget is not None:
                        if measured >= budget:
                            return
                        measured += 1
                spec = workload.spec(index)
                if not memory.take(spec.output_tokens):
                    return
                record = RequestRecord(index, spec.prompt_tokens, spec.output_tokens, warmup=warm)
                if numbered:
                    record.conversation, record.turn = conversation, turn
                records.append(record)
                await client.send(spec, record)
                tally.add()
                # Let streams whose bytes arrived with this one stamp them before this user
                # spends CPU sending its next request: closed-loop users finish in bursts.
                await asyncio.sleep(0)

    users = [asyncio.create_task(user(number)) for number in range(plan.users)]
    try:
        await asyncio.gather(*users)
    finally:
        for task in users:
            task.cancel()
        await asyncio.gather(*users, return_exceptions=True)


async def _open_loop(
    plan: StepPlan,
    client: Client,
    workload: Workload,
    records: list[RequestRecord],
    started: float,
    tally: Tally,
    memory: MemoryBudget,
) -> None:
    assert plan.arrivals is not None
    slots = asyncio.Semaphore(plan.max_inflight)
    in_flight: set[asyncio.Task] = set()

    async def issue(spec, record: RequestRecord) -> None:  # type: ignore[no-untyped-def]
        queued = perf_counter() if slots.locked() else None
        async with slots:
            if queued is not None:
                record.inflight_wait_s = perf_counter() - queued
            await client.send(spec, record)
        tally.add()

    try:
        for index, offset in plan.arrivals.share(plan.first_index, plan.index_stride):
            due = started + offset
            delay = due - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            woke = perf_counter()
            spec = workload.spec(index)
            if not memory.take(spec.output_tokens):
                break
            record = RequestRecord(
                index,
                spec.prompt_tokens,
                spec.output_tokens,
                scheduled=due,
                warmup=offset < plan.warmup,
                dispatch_lag_s=max(0.0, woke - due),
            )
            records.append(record)
            task = asyncio.create_task(issue(spec, record))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=plan.drain_timeout)
            for record in records:
                if record.end is None:
                    record.fail(
                        "timeout",
                        f"still answering {plan.drain_timeout:g} s after the "
                        "last arrival (--timeout)",
                    )
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


async def _sample_loop_lag(lags: array, times: array) -> None:
    """How much later than asked the loop wakes a sleeper: time the loop was busy elsewhere."""
    while True:
        expected = perf_counter() + LAG_SAMPLE_INTERVAL_S
        await asyncio.sleep(LAG_SAMPLE_INTERVAL_S)
        now = perf_counter()
        lags.append(max(0.0, now - expected) * 1000.0)
        times.append(now)


async def _watch_stop(stop: StopFlag, stopping: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(STOP_POLL_S)
    stopping.set()


async def _run_with_progress(
    plan: StepPlan,
    settings: ClientSettings,
    api: str,
    workload: Workload,
    stop: StopFlag,
    on_progress: Callable[[int], None] | None,
) -> StepOutcome:
    tally = Tally()
    async with client_for(api, settings) as client:
        reporter = asyncio.create_task(_report_progress(tally, on_progress))
        try:
            return await run_step(plan, client, workload, stop, tally)
        finally:
            reporter.cancel()
            if on_progress:
                on_progress(tally.value)


async def _report_progress(tally: Tally, on_progress: Callable[[int], None] | None) -> None:
    while on_progress:
        on_progress(tally.value)
        await asyncio.sleep(PROGRESS_POLL_S)


class InProcessExecutor:
    """Runs each step on a fresh event loop in this process."""

    def __init__(
        self, api: str, settings: ClientSettings, workload: Workload, stop: StopFlag
    ) -> None:
        self.api, self.settings, self.workload, self.stop = api, settings, workload, stop
        self.workers = 1

    def run(self, plan: StepPlan, on_progress: Callable[[int], None] | None = None) -> StepOutcome:
        return asyncio.run(
            _run_with_progress(plan, self.settings, self.api, self.workload, self.stop, on_progress)
        )

    def close(self) -> None:
        """Nothing outlives a step in this process."""


class WorkerPool:
    """``--workers N``: N spawned processes, each running its share of every step.

    Closed loop: users (and a ``--requests`` budget) are split evenly, request
    indices interleave. Open loop: arrival ``k`` goes to worker ``k mod N``, so
    together they replay the one Poisson schedule.
    """

    def __init__(
        self, count: int, api: str, settings: ClientSettings, workload: Workload, stop: StopFlag
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.workers = count
        self._completed = context.Array("q", count, lock=False)
        self._results = context.Queue()
        self._inboxes = [context.Queue() for _ in range(count)]
        self._processes = [
            context.Process(
                target=_worker_main,
                args=(
                    slot,
                    api,
                    settings,
                    workload,
                    stop.event,
                    self._completed,
                    self._inboxes[slot],
                    self._results,
                ),
                daemon=True,
            )
            for slot in range(count)
        ]
        for process in self._processes:
            process.start()
        for _ in range(count):
            self._results.get(timeout=120)

    def run(self, plan: StepPlan, on_progress: Callable[[int], None] | None = None) -> StepOutcome:
        for slot in range(self.workers):
            self._completed[slot] = 0
        shares = split_plan(plan, self.workers, start_at=perf_counter() + 0.2)
        for inbox, share in zip(self._inboxes, shares, strict=True):
            inbox.put(share)
        parts: list[StepOutcome] = []
        while len(parts) < self.workers:
            try:
                parts.append(self._results.get(timeout=PROGRESS_POLL_S))
            except queue.Empty:
                if not all(process.is_alive() for process in self._processes):
                    raise UserError(
                        "--workers: a client worker process exited unexpectedly; rerun with "
                        "--workers 1 to see its error",
                        exit_code=1,
                    ) from None
            if on_progress:
                on_progress(sum(self._completed))
        return StepOutcome.merge(parts)

    def close(self) -> None:
        for inbox in self._inboxes:
            inbox.put(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


def split_plan(plan: StepPlan, count: int, *, start_at: float) -> list[StepPlan]:
    shares = []
    for slot in range(count):
        share = StepPlan(
            warmup=plan.warmup,
            duration=plan.duration,
            max_inflight=max(1, plan.max_inflight // count),
            start_at=start_at,
            drain_timeout=plan.drain_timeout,
            max_requests=_even_share(plan.max_requests, count, slot),
            max_tokens=_even_share(plan.max_tokens, count, slot),
            metrics_urls=plan.metrics_urls if slot == 0 else (),
        )
        share.first_index, share.index_stride = slot, count
        if plan.arrivals is not None:
            share.arrivals = plan.arrivals
        else:
            assert plan.users is not None
            share.users = _even_share(plan.users, count, slot)
            # Users interleave over the processes as their request indices do.
            share.offset, share.spacing, share.ramp = (
                slot * plan.spacing,
                plan.spacing * count,
                plan.ramp,
            )
            share.requests = (
                None if plan.requests is None else _even_share(plan.requests, count, slot)
            )
        shares.append(share)
    return shares


def _even_share(total: int, count: int, slot: int) -> int:
    return total // count + (1 if slot < total % count else 0)


def _worker_main(
    slot: int,
    api: str,
    settings: ClientSettings,
    workload: Workload,
    stop_event: object,
    completed: object,
    inbox: multiprocessing.Queue,
    results: multiprocessing.Queue,
) -> None:
    # Ctrl-C reaches the whole process group; the parent decides and sets the stop flag.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = StopFlag(stop_event)
    results.put(None)
    while (plan := inbox.get()) is not None:
        tally = Tally(completed, slot)
        results.put(asyncio.run(_worker_step(plan, api, settings, workload, stop, tally)))


async def _worker_step(
    plan: StepPlan,
    api: str,
    settings: ClientSettings,
    workload: Workload,
    stop: StopFlag,
    tally: Tally,
) -> StepOutcome:
    async with client_for(api, settings) as client:
        return await run_step(plan, client, workload, stop, tally)
