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

from inferfleet.cli.bench.clients import api_names, client_for
from inferfleet.cli.bench.clients.base import ClientSettings
from inferfleet.cli.bench.config import BenchConfig, Variant
from inferfleet.cli.bench.engine import InProcessExecutor, StepPlan, StopFlag, WorkerPool
from inferfleet.cli.bench.metrics import StepIdentity, Thresholds, measure_step
from inferfleet.cli.bench.models import MaxLoad, RunResults, StepResult
from inferfleet.cli.bench.records import RETRIES, RequestRecord
from inferfleet.cli.bench.results import (
    OutputDir,
    ResultsWriter,
    machine_info,
    now_iso,
    request_rows,
    tool_info,
)
from inferfleet.cli.bench.scaling import EcsScaler, LocalScaler, SageMakerScaler, Scaler
from inferfleet.cli.bench.trace import Trace, TraceArrivals
from inferfleet.cli.bench.variants import (
    AlbRouting,
    LocalRouting,
    RoutingSwitch,
    SageMakerRouting,
    paired_ratios,
    study_table,
)
from inferfleet.cli.bench.workload import Arrivals, RequestSpec, Workload, schedule_hash
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
    instances: int | None = None

    @property
    def variant_name(self) -> str:
        return self.variant.name if self.variant else "default"


@dataclass(slots=True)
class RunOutcome:
    results: RunResults
    exit_code: int


def plan_steps(config: BenchConfig) -> list[Step]:
    """Per load (and instance count), per repeat, each variant in turn: A B A B."""
    steps = []
    for load in config.loads:
        for repeat in range(config.repeat):
            for variant in config.variants:
                steps.append(Step(len(steps) + 1, load, repeat, variant, config.instances_at(load)))
    return steps


def open_loop_arrivals(
    config: BenchConfig, rate: float, trace: Trace | None = None
) -> Arrivals | TraceArrivals:
    """Warm-up arrivals, then ``--duration`` seconds or ``--requests`` of measured ones;
    with ``--trace``, its rows at their (scaled) offsets."""
    if trace is not None:
        return TraceArrivals(trace.offsets, config.trace_speed, trace.sha256, config.warmup)
    shape = {"kind": config.arrival, "burstiness": config.burstiness}
    if config.duration is not None:
        return Arrivals(rate, config.seed, horizon_s=config.warmup + config.duration, **shape)
    return Arrivals(rate, config.seed, measured=config.requests, warmup=config.warmup, **shape)


def replay_config(config: BenchConfig, trace: Trace) -> BenchConfig:
    """A ``--trace`` run as one open-loop step: the replay's mean rate, measured from the
    end of the warm-up to the last arrival."""
    span = trace.span_s / config.trace_speed
    if span <= config.warmup:
        raise UserError(
            f"--warmup: the trace lasts {span:g} s at --trace-speed {config.trace_speed:g}, no "
            f"longer than the {config.warmup:g} s warm-up; lower --warmup (0 measures it all)"
        )
    rate = TraceArrivals(trace.offsets, config.trace_speed, trace.sha256).rate
    return config.model_copy(update={"rate": [rate], "duration": span - config.warmup})


def step_plan(
    config: BenchConfig, step: Step, arrivals: dict[float, Arrivals | TraceArrivals]
) -> StepPlan:
    plan = StepPlan(
        duration=config.duration,
        requests=config.requests,
        warmup=config.warmup,
        max_inflight=config.max_inflight,
        drain_timeout=config.timeout,
        metrics_urls=tuple(config.server_metrics),
    )
    if config.open_loop:
        plan.arrivals = arrivals[step.load]
    else:
        plan.users = int(step.load)
        plan.spacing = config.start_spacing(plan.users)
        plan.ramp = plan.spacing * (plan.users - 1)
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
            f"({', '.join(api_names())}) or fix --target/--endpoint/--model"
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def ctrl_c_stops(stop: StopFlag, console: Console) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM) ends the run after saving; a second one aborts at once."""

    def on_interrupt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("[yellow]interrupted: saving what was measured (Ctrl-C again to abort)[/]")

    previous = {signum: signal.signal(signum, on_interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
    if workload.trace is not None:
        config = replay_config(config, workload.trace)
    steps = plan_steps(config)
    arrivals = {rate: open_loop_arrivals(config, rate, workload.trace) for rate in config.rate}
    if workload.tokenizer is not None and arrivals:
        workload.prepare(int(max(process.expected_count for process in arrivals.values())))
    stop = StopFlag()
    output = OutputDir.claim(config.out)
    session: Session | None = None
    try:
        with ctrl_c_stops(stop, console), target_context(config) as (target, fleet):
            if fleet is not None and not config.server_metrics:
                urls = [f"{url}/metrics" for url in fleet.instance_urls]  # type: ignore[attr-defined]
                config = config.model_copy(update={"server_metrics": urls})
            session = Session(config, output, workload, arrivals, stop, console)
            session.run(target, fleet, steps)
    finally:
        if session is None or session.writer is None:
            output.release()
    writer = session.writer
    assert writer is not None
    results = writer.results
    writer.finish(
        partial=stop.is_set(),
        comparisons=paired_ratios(results.steps, results.variants),
        study=(
            study_table(results.steps, results.variants, config.users_per_instance or 0)
            if config.scaled
            else None
        ),
        max_load=session.max_load,
    )
    write_report(output, results, session.latencies)
    return RunOutcome(results, INTERRUPTED_EXIT if stop.is_set() else run_exit_code(results))


def run_exit_code(results: RunResults) -> int:
    """3 when the target failed a step, 4 when a step's figures are not valid, else 0."""
    if any(step.failed for step in results.steps):
        return FAILED_STEP_EXIT
    if any(not step.valid for step in results.steps):
        return INVALID_STEP_EXIT
    return 0


class Session:
    """One run against a reachable target: its switches, its executor, its steps."""

    def __init__(
        self,
        config: BenchConfig,
        output: OutputDir,
        workload: Workload,
        arrivals: dict[float, Arrivals | TraceArrivals],
        stop: StopFlag,
        console: Console,
    ) -> None:
        self.config, self.output, self.workload = config, output, workload
        self.arrivals, self.stop, self.console = arrivals, stop, console
        self.writer: ResultsWriter | None = None
        self.latencies: list[dict[str, np.ndarray]] = []
        self.max_load: MaxLoad | None = None
        self.thresholds = Thresholds(
            config.max_loop_lag_ms, config.max_dispatch_lag_ms, config.max_error_rate
        )

    def run(self, target: str, fleet: object | None, steps: list[Step]) -> None:
        config = self.config
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
        header = run_header(config, description, emulated, self.workload, self.arrivals)
        self.writer = ResultsWriter(self.output, header)
        self.switch = routing_switch(config, fleet, self.stop)
        self.scaler = scaler_for(config, fleet, self.stop)
        self.executor = (
            WorkerPool(config.workers, config.api, settings, self.workload, self.stop)
            if config.workers > 1
            else InProcessExecutor(config.api, settings, self.workload, self.stop)
        )
        with contextlib.ExitStack() as cleanup:
            # Each is undone whatever happens, and one failing does not skip the others.
            cleanup.callback(self.executor.close)
            if self.switch is not None:
                cleanup.callback(self.switch.restore)
            if self.scaler is not None:
                cleanup.callback(self.scaler.restore)
            with self._progress() as progress:
                if config.find_max_load:
                    self.max_load = self._search(progress)
                else:
                    self._run_planned(steps, progress)

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )

    def _run_planned(self, steps: list[Step], progress: Progress) -> None:
        size = None
        for step in steps:
            if self.stop.is_set():
                return
            if self.scaler is not None and step.instances not in (None, size):
                self.console.print(f"resizing the target to {step.instances} instance(s)")
                self.scaler.resize(step.instances)
                size = step.instances
            if self.switch is not None and step.variant is not None:
                self.switch.apply(step.variant.value)
            if self.stop.is_set():
                return
            self.measure(step, len(steps), progress)

    def _search(self, progress: Progress) -> MaxLoad:
        """Bisect the load range for the largest load whose step is valid and meets the SLO."""
        config = self.config
        low, high = config.loads
        probes: list[tuple[float, bool]] = []

        def meets(load: float) -> bool | None:
            step = Step(len(probes) + 1, load, 0, None, config.instance_count)
            result = self.measure(step, 0, progress)
            if result is None:
                return None
            met = result.valid and result.goodput is not None and result.goodput.slo_met
            probes.append((load, met))
            return met

        def gap_closed(low: float, high: float) -> bool:
            if config.users:
                return high - low <= max(1.0, 0.05 * high)
            return high - low <= 0.05 * high

        mode = "rate" if config.open_loop else "users"
        best, failed_above, note = None, None, ""
        first = meets(low)
        if first is False:
            return MaxLoad(mode=mode, best=None, failed_above=low, probes=probes,
                           note=f"even the lowest load, {low:g}, missed the SLO")  # fmt: skip
        best = low
        top = meets(high) if first else None
        if top:
            note = f"the highest load, {high:g}, met the SLO: search higher"
            return MaxLoad(mode=mode, best=high, failed_above=None, probes=probes, note=note)
        failed_above = high if top is False else None
        while top is False and not gap_closed(best, failed_above) and not self.stop.is_set():
            middle = (best + failed_above) / 2
            if config.users:
                middle = float(round(middle))
                if middle in (best, failed_above):
                    break
            met = meets(middle)
            if met is None:
                break
            if met:
                best = middle
            else:
                failed_above = middle
        if self.stop.is_set():
            note = "interrupted: the bracket is as far as the search got"
        return MaxLoad(mode=mode, best=best, failed_above=failed_above, probes=probes, note=note)

    def measure(self, step: Step, total: int, progress: Progress) -> StepResult | None:
        """Run and record one step; None when Ctrl-C came first."""
        config, writer = self.config, self.writer
        assert writer is not None
        if self.stop.is_set():
            return None
        if config.open_loop and step.load not in self.arrivals:
            self.arrivals[step.load] = open_loop_arrivals(config, step.load)
        plan = step_plan(config, step, self.arrivals)
        load_text = f"{step.load:g} req/s" if config.open_loop else f"{step.load:g} users"
        where = f" on {step.instances} instance(s)" if config.scaled else ""
        total_units = (
            (plan.ramp + config.warmup + config.duration)
            if config.duration
            else plan_requests(plan)
        )
        label = f"step {step.number}/{total}" if total else f"probe {step.number}"
        task = progress.add_task(
            f"{label} {step.variant_name} {load_text}{where}", total=total_units, done="0 requests"
        )
        began = perf_counter()

        def on_progress(done: int) -> None:
            completed = perf_counter() - began if config.duration else done
            if total_units is not None:
                completed = min(completed, total_units)
            progress.update(task, completed=completed, done=f"{done} requests")

        outcome = self.executor.run(plan, on_progress)
        identity = StepIdentity(
            id=len(writer.results.steps) + 1,
            variant=step.variant_name,
            repeat=step.repeat,
            load=step.load,
            users=None if config.open_loop else int(step.load),
            rate=step.load if config.open_loop else None,
            instances=step.instances,
            target_config=getattr(self.switch, "current", None),
            schedule_hash=schedule_hash(
                self.workload, [self.arrivals[step.load]] if config.open_loop else []
            ),
        )
        figures = measure_step(
            outcome,
            open_loop=config.open_loop,
            thresholds=self.thresholds,
            price_per_hour=config.price_per_hour,
            window=(
                (
                    outcome.measured_from,
                    min(outcome.measured_from + config.duration, outcome.finished),
                )
                if config.duration
                else None
            ),
            identity=identity,
            slo=config.slo,
        )
        rows = request_rows(
            outcome.records,
            step=identity.id,
            variant=step.variant_name,
            repeat=step.repeat,
            users=identity.users,
            rate=identity.rate,
            origin=outcome.started,
        )
        writer.add_step(figures.result, rows)
        self.latencies.append(figures.latencies)
        # the running count includes the warm-up; the step's figures do not
        progress.update(
            task,
            completed=total_units or len(outcome.records),
            done=f"{figures.result.requests} measured + {figures.result.warmup_requests} warm-up",
        )
        if not figures.result.valid:
            self.console.print(
                f"[yellow]step {identity.id} invalid:[/] "
                + "; ".join(figures.result.invalid_reasons)
            )
        return figures.result


def run_header(
    config: BenchConfig,
    description: dict,
    emulated: bool,
    workload: Workload,
    arrivals: dict[float, Arrivals | TraceArrivals],
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
            "fleet": {
                "config": str(config.config),
                "service": config.service,
                "region": config.region,
            }
            if config.config
            else None,
        },
        "workload": {
            **workload.describe(),
            "hash": schedule_hash(workload, [arrivals[rate] for rate in config.rate]),
        },
        "load": load_header(config),
        "variants": [variant.name for variant in config.compare] or ["default"],
        "slo": config.slo,
        "started_at": now_iso(),
    }


def load_header(config: BenchConfig) -> dict:
    """The load section of results.json: how the steps were driven and judged."""
    return {
        "mode": "open" if config.open_loop else "closed",
        "users": config.users or None,
        "rates": config.rate or None,
        "duration": config.duration,
        "requests": config.requests,
        "warmup": config.warmup,
        "trace": str(config.trace) if config.trace else None,
        "trace_speed": config.trace_speed if config.trace else None,
        "arrival": "trace" if config.trace else config.arrival if config.open_loop else None,
        "burstiness": config.burstiness if config.arrival == "gamma" else None,
        "ramp_up": config.ramp_up or None,
        "stagger": config.stagger or None,
        "repeat": config.repeat,
        "workers": config.workers,
        "max_inflight": config.max_inflight,
        "max_loop_lag_ms": config.max_loop_lag_ms,
        "max_dispatch_lag_ms": config.max_dispatch_lag_ms,
        "max_error_rate": config.max_error_rate,
        # The retry policy: none; a failed request counts once in errors_by_class.
        "retries": RETRIES,
        "scale": config.scale or None,
        "users_per_instance": config.users_per_instance,
        "find_max_load": config.find_max_load,
    }


def routing_switch(
    config: BenchConfig, fleet: object | None, stop: StopFlag
) -> RoutingSwitch | None:
    if not config.compare:
        return None
    if fleet is not None:
        return LocalRouting(fleet)
    if config.api == "sagemaker" and not config.target_group_arn:
        assert config.target is not None
        return SageMakerRouting(
            config.target, region=config.region, timeout_s=config.scale_timeout,
            stopped=stop.is_set,
        )  # fmt: skip
    assert config.target_group_arn is not None
    return AlbRouting(config.target_group_arn, region=config.region, settle_s=config.alb_settle)


def scaler_for(config: BenchConfig, fleet: object | None, stop: StopFlag) -> Scaler | None:
    if not config.scaled:
        return None
    if fleet is not None:
        return LocalScaler(fleet)
    if config.ecs_cluster and config.ecs_service:
        return EcsScaler(
            config.ecs_cluster, config.ecs_service, asg_name=config.asg_name,
            target_group_arn=config.target_group_arn,
            tasks_per_instance=config.tasks_per_instance, region=config.region,
            timeout_s=config.scale_timeout, stopped=stop.is_set,
        )  # fmt: skip
    assert config.target is not None
    return SageMakerScaler(
        config.target, region=config.region, timeout_s=config.scale_timeout, stopped=stop.is_set
    )


def plan_requests(plan: StepPlan) -> float | None:
    if plan.arrivals is not None:
        return plan.arrivals.expected_count
    return plan.requests


def write_report(
    output: OutputDir, results: RunResults, latencies: list[dict[str, np.ndarray]]
) -> None:
    """report.md, report.html and the plots of a finished (or interrupted) run."""
    from inferfleet.cli.bench.plots import write_plots
    from inferfleet.cli.bench.report import render_html, render_report

    plots: list[str] = []
    if results.steps:
        plots = write_plots(output, results, latencies)
    with output.atomic("report.md") as handle:
        handle.write(render_report(results, plots))
    with output.atomic("report.html") as handle:
        handle.write(render_html(results, plots, output.path))
