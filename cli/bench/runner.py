"""A whole benchmark run: preflight, the step matrix, variants, output files, Ctrl-C.

Order of steps: for each load (users or rate), for each repeat, each variant
in turn (A B A B ...). Results are written after every step; Ctrl-C stops the
running step, keeps what it measured and flags the run partial.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from time import perf_counter

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from inferfleet.cli.bench.clients import ClientSettings, client_for
from inferfleet.cli.bench.config import BenchConfig, Variant
from inferfleet.cli.bench.engine import InProcessExecutor, StepPlan, StopFlag, WorkerPool
from inferfleet.cli.bench.metrics import Thresholds, measure_step
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.results import (
    OutputDir,
    ResultsWriter,
    machine_info,
    now_iso,
    request_rows,
    tool_info,
)
from inferfleet.cli.bench.variants import AlbRouting, LocalRouting, RoutingSwitch, paired_ratios
from inferfleet.cli.bench.workload import PoissonArrivals, RequestSpec, Workload, schedule_hash
from inferfleet.cli.errors import UserError

# Exit codes of a run that was carried out (bad input exits 2, a failed operation 1).
FAILED_STEP_EXIT = 3
INVALID_STEP_EXIT = 4
INTERRUPTED_EXIT = 130


@dataclass(frozen=True, slots=True)
class Step:
    number: int
    load: float
    repeat: int
    variant: Variant | None

    @property
    def variant_name(self) -> str:
        return self.variant.name if self.variant else "default"


@dataclass(slots=True)
class RunOutcome:
    results: dict
    exit_code: int


def plan_steps(config: BenchConfig) -> list[Step]:
    steps = []
    for load in config.loads:
        for repeat in range(config.repeat):
            for variant in config.variants:
                steps.append(Step(len(steps) + 1, load, repeat, variant))
    return steps


def open_loop_arrivals(config: BenchConfig, rate: float) -> PoissonArrivals:
    """Warm-up arrivals, then ``--duration`` seconds or ``--requests`` of measured ones."""
    if config.duration is not None:
        return PoissonArrivals(rate, config.seed, horizon_s=config.warmup + config.duration)
    return PoissonArrivals(rate, config.seed, measured=config.requests, warmup=config.warmup)


def step_plan(config: BenchConfig, step: Step, arrivals: dict[float, PoissonArrivals]) -> StepPlan:
    plan = StepPlan(
        duration=config.duration,
        requests=config.requests,
        warmup=config.warmup,
        max_inflight=config.max_inflight,
        drain_timeout=config.timeout,
    )
    if config.open_loop:
        plan.arrivals = arrivals[step.load]
    else:
        plan.users = int(step.load)
    return plan


async def preflight(
    api: str, settings: ClientSettings, target_label: str
) -> tuple[ClientSettings, dict, bool]:
    """One small request before the run: reachable, right API; resolves the model name."""
    async with client_for(api, settings) as client:
        record = RequestRecord(-1, 1, 2)
        await client.send(RequestSpec(-1, "Say hello.", 3, 2), record)
        description = client.describe()
        model = getattr(client, "model", None)
    if record.error == "connect":
        raise UserError(
            f"--target: cannot connect to {target_label} ({record.error_detail}); check the URL "
            "and that the server is up",
            exit_code=1,
        )
    if record.error == "timeout":
        raise UserError(f"--target: {target_label} did not answer within --timeout", exit_code=1)
    if record.error in ("http_404", "http_405", "bad_stream", "truncated"):
        raise UserError(
            f"--api: {target_label} does not answer like the '{api}' API "
            f"({record.error}: {record.error_detail[:160]}); pick the --api the server speaks "
            "(openai, triton, sagemaker, classify) or fix --target/--endpoint/--model"
        )
    if record.error is not None:
        raise UserError(
            f"--target: the first request to {target_label} failed ({record.error}: "
            f"{record.error_detail[:160]})",
            exit_code=1,
        )
    if model is not None:
        settings = dataclasses.replace(settings, model=model)
    return settings, description, record.emulated


@contextlib.contextmanager
def ctrl_c_stops(stop: StopFlag, console: Console) -> Iterator[None]:
    """First Ctrl-C ends the run after saving; a second one aborts at once."""

    def on_interrupt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]interrupted: saving what was measured (Ctrl-C again to abort)[/]")

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def target_context(config: BenchConfig) -> Iterator[tuple[str, object | None]]:
    if not config.local:
        yield config.target or "", None
        return
    from inferfleet.cli.local.fleet import LocalFleet
    from inferfleet.cli.sizing.profile import ServerProfile

    first_routing = config.compare[0].value if config.compare else "least_outstanding_requests"
    profile = ServerProfile(batching=config.local_mode)
    with LocalFleet(servers=config.servers, routing=first_routing, profile=profile) as fleet:
        yield fleet.url, fleet


def run_bench(config: BenchConfig, console: Console | None = None) -> RunOutcome:
    console = console or Console(stderr=True)
    workload = Workload.from_config(config)
    steps = plan_steps(config)
    arrivals = {rate: open_loop_arrivals(config, rate) for rate in config.rate}
    stop = StopFlag()
    output = OutputDir.claim(config.out)
    writer: ResultsWriter | None = None
    try:
        with ctrl_c_stops(stop, console), target_context(config) as (target, fleet):
            writer, latencies = _run_on_target(
                config, target, fleet, output, workload, steps, arrivals, stop, console
            )
    finally:
        if writer is None:
            output.release()
    results = writer.results
    variants = results["variants"]
    writer.finish(partial=stop.is_set(), comparisons=paired_ratios(results["steps"], variants))
    write_report(output, writer.results, latencies)
    return RunOutcome(writer.results, INTERRUPTED_EXIT if stop.is_set() else run_exit_code(results))


def _run_on_target(
    config: BenchConfig,
    target: str,
    fleet: object | None,
    output: OutputDir,
    workload: Workload,
    steps: list[Step],
    arrivals: dict[float, PoissonArrivals],
    stop: StopFlag,
    console: Console,
) -> tuple[ResultsWriter, list[dict[str, np.ndarray]]]:
    settings = ClientSettings(
        target=target,
        endpoint=config.endpoint,
        model=config.model,
        target_model=config.target_model,
        region=config.region,
        endpoint_url=config.endpoint_url,
        timeout=config.timeout,
        max_connections=config.max_inflight,
    )
    label = target if config.api != "sagemaker" else f"SageMaker endpoint {target}"
    settings, description, emulated = asyncio.run(preflight(config.api, settings, label))
    header = run_header(config, description, emulated, workload, arrivals)
    writer = ResultsWriter(output, header)
    switch = routing_switch(config, fleet)
    executor = (
        WorkerPool(config.workers, config.api, settings, workload, stop)
        if config.workers > 1
        else InProcessExecutor(config.api, settings, workload, stop)
    )
    latencies = []
    try:
        latencies = _run_steps(
            config, steps, arrivals, workload, executor, switch, writer, stop, console
        )
    finally:
        executor.close()
        if switch is not None:
            switch.restore()
    return writer, latencies


def run_exit_code(results: dict) -> int:
    """3 when the target failed a step, 4 when a step's figures are not valid, else 0."""
    steps = results["steps"]
    if any(step["failed"] for step in steps):
        return FAILED_STEP_EXIT
    if any(not step["valid"] for step in steps):
        return INVALID_STEP_EXIT
    return 0


def run_header(
    config: BenchConfig,
    description: dict,
    emulated: bool,
    workload: Workload,
    arrivals: dict[float, PoissonArrivals],
) -> dict:
    """What results.json says about the run before any step: tool, machine, target, load."""
    return {
        "tool": tool_info(),
        "machine": machine_info(),
        "target": {
            **description,
            "emulated": emulated or config.local,
            "local": {"servers": config.servers, "mode": config.local_mode}
            if config.local
            else None,
            "instances": config.instance_count,
            "price_per_hour": config.price_per_hour,
        },
        "workload": {
            **workload.describe(),
            "hash": schedule_hash(workload, [arrivals[rate] for rate in config.rate]),
        },
        "load": {
            "mode": "open" if config.open_loop else "closed",
            "users": config.users or None,
            "rates": config.rate or None,
            "duration": config.duration,
            "requests": config.requests,
            "warmup": config.warmup,
            "repeat": config.repeat,
            "workers": config.workers,
            "max_inflight": config.max_inflight,
            "max_loop_lag_ms": config.max_loop_lag_ms,
            "max_dispatch_lag_ms": config.max_dispatch_lag_ms,
            "max_error_rate": config.max_error_rate,
        },
        "variants": [variant.name for variant in config.compare] or ["default"],
        "started_at": now_iso(),
    }


def routing_switch(config: BenchConfig, fleet: object | None) -> RoutingSwitch | None:
    if not config.compare:
        return None
    if fleet is not None:
        return LocalRouting(fleet)
    assert config.target_group_arn is not None
    return AlbRouting(config.target_group_arn, region=config.region, settle_s=config.alb_settle)


def _run_steps(
    config: BenchConfig,
    steps: list[Step],
    arrivals: dict[float, PoissonArrivals],
    workload: Workload,
    executor: InProcessExecutor | WorkerPool,
    switch: RoutingSwitch | None,
    writer: ResultsWriter,
    stop: StopFlag,
    console: Console,
) -> list[dict[str, np.ndarray]]:
    thresholds = Thresholds(
        config.max_loop_lag_ms, config.max_dispatch_lag_ms, config.max_error_rate
    )
    latencies = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]} requests"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        refresh_per_second=4,
    )
    with progress:
        for step in steps:
            if stop.is_set():
                break
            if switch is not None and step.variant is not None:
                switch.apply(step.variant.value)
                if stop.is_set():
                    break
            plan = step_plan(config, step, arrivals)
            load_text = f"{step.load:g} req/s" if config.open_loop else f"{step.load:g} users"
            total = (config.warmup + config.duration) if config.duration else plan_requests(plan)
            task = progress.add_task(
                f"step {step.number}/{len(steps)} {step.variant_name} {load_text}",
                total=total,
                done=0,
            )
            began = perf_counter()

            def on_progress(
                done: int, task: int = task, began: float = began, total: float | None = total
            ) -> None:
                completed = perf_counter() - began if config.duration else done
                if total is not None:
                    completed = min(completed, total)
                progress.update(task, completed=completed, done=done)

            outcome = executor.run(plan, on_progress)
            figures = measure_step(
                outcome,
                open_loop=config.open_loop,
                thresholds=thresholds,
                price_per_hour=config.price_per_hour,
                instances=config.instance_count,
                window=(
                    (
                        outcome.measured_from,
                        min(outcome.measured_from + config.duration, outcome.finished),
                    )
                    if config.duration
                    else None
                ),
            )
            summary = {
                "id": step.number,
                "variant": step.variant_name,
                "repeat": step.repeat,
                "load": step.load,
                ("rate" if config.open_loop else "users"): (
                    step.load if config.open_loop else int(step.load)
                ),
                "partial": outcome.stopped,
                "schedule_hash": schedule_hash(
                    workload, [arrivals[step.load]] if config.open_loop else []
                ),
                **figures.summary,
            }
            rows = request_rows(
                outcome.records,
                step=step.number,
                variant=step.variant_name,
                repeat=step.repeat,
                users=None if config.open_loop else int(step.load),
                rate=step.load if config.open_loop else None,
                origin=outcome.started,
            )
            writer.add_step(summary, rows)
            latencies.append(figures.latencies)
            progress.update(task, completed=total if total is not None else len(outcome.records))
            if not summary["valid"]:
                console.print(
                    f"[yellow]step {step.number} invalid:[/] "
                    + "; ".join(summary["invalid_reasons"])
                )
    return latencies


def plan_requests(plan: StepPlan) -> float | None:
    if plan.arrivals is not None:
        return plan.arrivals.expected_count
    return plan.requests


def write_report(output: OutputDir, results: dict, latencies: list[dict[str, np.ndarray]]) -> None:
    """report.md and the plots of a finished (or interrupted) run, labelled by its target."""
    from inferfleet.cli.bench.plots import write_plots
    from inferfleet.cli.bench.report import render_report, target_label

    plots: list[str] = []
    if results["steps"]:
        plots = write_plots(
            output,
            results["steps"],
            latencies,
            open_loop=results["load"]["mode"] == "open",
            label=target_label(results["target"]),
        )
    with output.atomic("report.md") as handle:
        handle.write(render_report(results, plots))
