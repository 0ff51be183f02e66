"""``bench --local --regions N --scenario brownout:...``: one load, twice — controller on, then
static weights — against a multi-region rehearsal in which one region browns out.

``brownout:region=R,at=20s,slowdown=4[,for=20s]`` slows every step of region ``R`` (a name or
an index into the rehearsal's regions) by a factor from ``at`` for ``for`` seconds of the
measured window; ``kill=60%`` instead kills that share of its servers (rounded up) and
brings fresh ones back at the end. Each arm gets a fresh rehearsal
(:class:`~inferfleet.cli.local.regions.MultiRegionFleet`), the same seed and schedule.

Per arm and phase (before, during, after the brownout, by send time): TTFT P50/P99,
output tokens/min, errors. For the controller arm: time from the brownout to the first
weight change and to the settled split (the last change during the brownout), and how long
the browned-out region kept serving the streams it had open at the first change (they stay
where they are, as with DNS). A plot shows weights and TTFT P99 over time for both arms.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rich.console import Console
from rich.table import Table

from inferfleet.cli.bench.clients.base import ClientSettings
from inferfleet.cli.bench.config import BenchConfig
from inferfleet.cli.bench.engine import InProcessExecutor, StepOutcome, StepPlan, StopFlag
from inferfleet.cli.bench.metrics import (
    CANCELLED,
    StepIdentity,
    Thresholds,
    TimeToFirstToken,
    distribution,
    measure_step,
    tokens_between,
)
from inferfleet.cli.bench.models import RunResults
from inferfleet.cli.bench.records import RequestRecord
from inferfleet.cli.bench.results import OutputDir, ResultsWriter, request_rows
from inferfleet.cli.bench.runner import (
    INTERRUPTED_EXIT,
    RunOutcome,
    ctrl_c_stops,
    open_loop_arrivals,
    preflight,
    run_exit_code,
    run_header,
)
from inferfleet.cli.bench.trace import TraceArrivals
from inferfleet.cli.bench.workload import Arrivals, Workload, schedule_hash
from inferfleet.cli.errors import UserError, pydantic_problem
from inferfleet.cli.local.regions import (
    LOCAL_OBJECTIVE_S,
    LOCAL_PERIOD_S,
    MultiRegionFleet,
    RegionsConfig,
    local_region_names,
)
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.constructs.traffic_controller.weights import WeightPolicy

ARMS = ("controller", "static")
PHASES = ("before", "during", "after")
PLOT_FILE = "weights_and_ttft_vs_time.png"
# Targets of the issue this scenario answers to, reported next to the measured figures.
FIRST_SHIFT_TARGET_PERIODS = 2.0
TTFT_RATIO_TARGET = 0.5
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
_START_DELAY_S = 0.5


class Brownout(BaseModel):
    """One region slowed down, or partly killed, for a while."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str
    at_s: float = Field(ge=0)
    for_s: float | None = Field(default=None, gt=0)
    slowdown: float | None = Field(default=None, gt=1, le=100)
    kill: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Brownout:
        if (self.slowdown is None) == (self.kill is None):
            raise ValueError("give exactly one of slowdown=FACTOR or kill=PERCENT%")
        return self

    def describe(self) -> str:
        what = f"slowdown x{self.slowdown:g}" if self.slowdown else f"kill {self.kill:.0%}"
        return f"{self.region}: {what} from {self.at_s:g} s for {self.for_s:g} s"


def _seconds(text: str, key: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{key}={text!r} is not a duration; write it like 20s, 500ms or 1m")
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]


def parse_scenario(text: str) -> Brownout:
    """``brownout:region=1,at=20s,slowdown=4`` (or ``kill=60%``, optional ``for=20s``)."""
    kind, _, rest = text.partition(":")
    if kind.strip() != "brownout" or not rest:
        raise ValueError(
            f"{text!r} is not a scenario; use brownout:region=R,at=20s,slowdown=4 "
            "(or kill=60% instead of slowdown)"
        )
    fields: dict[str, Any] = {}
    for part in rest.split(","):
        key, equals, value = (piece.strip() for piece in part.partition("="))
        if not equals or not value:
            raise ValueError(f"{part!r} in the scenario must be key=value")
        if key == "region":
            fields["region"] = value
        elif key in ("at", "for"):
            fields[f"{key}_s"] = _seconds(value, key)
        elif key == "slowdown":
            try:
                fields["slowdown"] = float(value.removeprefix("x"))
            except ValueError:
                raise ValueError(f"slowdown={value!r} must be a factor above 1, e.g. 4") from None
        elif key == "kill":
            try:
                fields["kill"] = float(value.removesuffix("%")) / 100.0
            except ValueError:
                raise ValueError(f"kill={value!r} must be a share of servers, e.g. 60%") from None
        else:
            raise ValueError(f"{key!r} is not a scenario key; use region, at, for, slowdown, kill")
    if "region" not in fields or "at_s" not in fields:
        raise ValueError("the scenario needs region=R and at=DURATION, e.g. region=1,at=20s")
    try:
        return Brownout.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        key = (
            {"at_s": "at", "for_s": "for"}.get(str(first["loc"][0]), first["loc"][0])
            if first["loc"]
            else None
        )
        message = pydantic_problem(first)
        raise ValueError(f"{text!r}: {f'{key}: ' if key else ''}{message}") from None


def default_users(servers: int, regions: int) -> int:
    """Closed-loop users when none are given: half the slots of the whole rehearsal."""
    return max(1, servers * regions * 2)


@dataclass(frozen=True)
class ScenarioConfig:
    """A scenario run: the bench options, the rehearsal's shape and the brownout."""

    bench: BenchConfig
    regions: int
    brownout: Brownout
    period_s: float = LOCAL_PERIOD_S
    objective_s: float = LOCAL_OBJECTIVE_S

    @property
    def region_names(self) -> tuple[str, ...]:
        return local_region_names(self.regions)

    @property
    def browned_region(self) -> str:
        return self.brownout.region

    @property
    def load(self) -> float:
        return self.bench.loads[0]


def build_scenario(
    bench: BenchConfig, *, regions: int, scenario: str, period_s: float | None
) -> ScenarioConfig:
    """Check the combination and resolve the region; problems name the flag to change."""
    try:
        brownout = parse_scenario(scenario)
    except ValueError as error:
        raise UserError(f"--scenario: {error}") from None
    if not bench.local:
        raise UserError("--scenario: a scenario runs on the local rehearsal; add --local")
    if regions < 2:
        raise UserError("--regions: a brownout scenario needs at least 2 regions to move to")
    if bench.compare:
        raise UserError("--compare: a scenario compares controller and static weights itself")
    if len(bench.loads) != 1:
        raise UserError("--users/--rate: a scenario runs one load; give a single value")
    if bench.duration is None:
        raise UserError("--duration: a scenario is timed; give --duration SECONDS, not --requests")
    if bench.workers != 1:
        raise UserError("--workers: a scenario runs its client in one process; drop --workers")
    names = local_region_names(regions)
    region = brownout.region
    if region.isdigit() and int(region) < regions:
        region = names[int(region)]
    if region not in names:
        raise UserError(
            f"--scenario: region={brownout.region} is not one of the {regions} local regions; "
            f"use an index 0..{regions - 1} or a name ({', '.join(names)})"
        )
    duration = bench.duration
    lasting = brownout.for_s if brownout.for_s is not None else (duration - brownout.at_s) / 2
    if brownout.at_s <= 0 or lasting <= 0 or brownout.at_s + lasting >= duration:
        raise UserError(
            f"--scenario: the brownout ({brownout.at_s:g} s + {lasting:g} s) must start after 0 "
            f"and end before --duration {duration:g} s, so every phase is measured; move at=, "
            "shorten for= or raise --duration"
        )
    period = period_s if period_s is not None else LOCAL_PERIOD_S
    if not 0.2 <= period <= lasting:
        raise UserError(
            f"--control-period: {period:g} s must be 0.2 s or more and no longer than the "
            f"brownout ({lasting:g} s)"
        )
    return ScenarioConfig(
        bench=bench,
        regions=regions,
        brownout=brownout.model_copy(update={"region": region, "for_s": lasting}),
        period_s=period,
    )


@dataclass
class Arm:
    name: str
    outcome: StepOutcome
    timeline: list[dict[str, Any]]
    origin: float
    description: dict[str, Any]
    writer: ResultsWriter | None = None


def run_scenario(config: ScenarioConfig, console: Console | None = None) -> RunOutcome:
    """Both arms, then results.json (with a ``scenario`` section), requests.csv, report, plot."""
    console = console or Console(stderr=True)
    bench = config.bench
    workload = Workload.from_config(bench)
    arrivals = {rate: open_loop_arrivals(bench, rate) for rate in bench.rate}
    stop = StopFlag()
    arms: list[Arm] = []
    output = OutputDir.claim(bench.out)
    writer: ResultsWriter | None = None
    # Errors (streams cut by a kill) are what a scenario measures, per phase: an arm fails only
    # when nothing succeeded.
    thresholds = Thresholds(bench.max_loop_lag_ms, bench.max_dispatch_lag_ms, max_error_rate=1.0)
    try:
        _run_arms(config, workload, arrivals, stop, output, thresholds, arms, console)
    finally:
        if not arms:
            output.release()
    if not arms:
        raise UserError(
            "scenario: interrupted before the first arm finished; nothing was written",
            exit_code=INTERRUPTED_EXIT,
        )
    writer = arms[0].writer
    assert writer is not None
    summary = summarise(config, arms)
    writer.results.scenario = summary
    writer.finish(partial=stop.is_set() or len(arms) < len(ARMS), comparisons=[])
    plots = [write_plot(output, config, arms)]
    _write_report(output, writer.results, plots)
    print_summary(summary, console)
    code = INTERRUPTED_EXIT if stop.is_set() else run_exit_code(writer.results)
    return RunOutcome(writer.results, code)


def _run_arms(
    config: ScenarioConfig,
    workload: Workload,
    arrivals: dict[float, Arrivals | TraceArrivals],
    stop: StopFlag,
    output: OutputDir,
    thresholds: Thresholds,
    arms: list[Arm],
    console: Console,
) -> None:
    bench = config.bench
    writer: ResultsWriter | None = None
    with ctrl_c_stops(stop, console):
        for name in ARMS:
            if stop.is_set():
                break
            console.print(
                f"[bold]{name}[/]: {config.regions} regions x {bench.servers} emulated servers, "
                f"{config.brownout.describe()}, {bench.duration:g} s"
            )
            arm = _run_arm(config, name, workload, arrivals, stop)
            if writer is None:
                writer = ResultsWriter(
                    output,
                    {
                        **run_header(bench, arm.description, True, workload, arrivals),
                        "variants": list(ARMS),
                    },
                )
            identity = StepIdentity(
                id=len(arms) + 1,
                variant=name,
                load=config.load,
                users=None if bench.open_loop else int(config.load),
                rate=config.load if bench.open_loop else None,
                instances=bench.instance_count,
                schedule_hash=schedule_hash(
                    workload, [arrivals[config.load]] if bench.open_loop else []
                ),
            )
            figures = measure_step(
                arm.outcome,
                open_loop=bench.open_loop,
                thresholds=thresholds,
                window=(arm.origin, arm.origin + bench.duration),  # type: ignore[operator]
                identity=identity,
            )
            writer.add_step(
                figures.result,
                request_rows(
                    arm.outcome.records,
                    step=len(arms) + 1,
                    variant=name,
                    repeat=0,
                    users=None if bench.open_loop else int(config.load),
                    rate=config.load if bench.open_loop else None,
                    origin=arm.origin,
                ),
            )
            arm.writer = writer
            arms.append(arm)


def _run_arm(
    config: ScenarioConfig,
    name: str,
    workload: Workload,
    arrivals: dict[float, Arrivals | TraceArrivals],
    stop: StopFlag,
) -> Arm:
    bench = config.bench
    regions = RegionsConfig(
        regions=config.region_names,
        servers=bench.servers,
        profile=ServerProfile(batching=bench.local_mode),
        period_s=config.period_s,
        controller=name == "controller",
        policy=WeightPolicy(objective_s=config.objective_s),
    )
    with MultiRegionFleet(regions) as fleet:
        settings = ClientSettings(
            target=fleet.url,
            endpoint=bench.endpoint,
            model=bench.model,
            timeout=bench.timeout,
            max_connections=bench.max_inflight,
        )
        settings, client, _ = asyncio.run(preflight(bench.api, settings, fleet.url))
        plan = StepPlan(
            duration=bench.duration,
            warmup=bench.warmup,
            max_inflight=bench.max_inflight,
            drain_timeout=bench.timeout,
            start_at=perf_counter() + _START_DELAY_S,
        )
        if bench.open_loop:
            plan.arrivals = arrivals[config.load]
        else:
            plan.users = int(config.load)
        assert plan.start_at is not None
        origin = plan.start_at + bench.warmup
        brownout = config.brownout
        assert brownout.for_s is not None
        fleet.schedule(
            region=brownout.region,
            at=origin + brownout.at_s,
            until=origin + brownout.at_s + brownout.for_s,
            slowdown=brownout.slowdown,
            kill=brownout.kill,
        )
        outcome = InProcessExecutor(bench.api, settings, workload, stop).run(plan)
        description = {**client, "rehearsal": fleet.describe()}
        return Arm(name, outcome, fleet.timeline(), origin, description)


def _events(arm: Arm, kind: str) -> list[dict[str, Any]]:
    return [entry for entry in arm.timeline if entry["kind"] == kind]


def phase_windows(config: ScenarioConfig, arm: Arm) -> dict[str, tuple[float, float]]:
    """Phases on the arm's clock, from when the brownout was applied and lifted."""
    began = _events(arm, "brownout")
    ended = _events(arm, "restored")
    assert config.brownout.for_s is not None and config.bench.duration is not None
    start = began[0]["t"] if began else arm.origin + config.brownout.at_s
    end = ended[0]["t"] if ended else start + config.brownout.for_s
    finish = arm.origin + config.bench.duration
    return {"before": (arm.origin, start), "during": (start, end), "after": (end, finish)}


def phase_figures(records: Sequence[RequestRecord], window: tuple[float, float]) -> dict:
    """TTFT P50/P99 (s) of requests sent in ``window``, tokens/min received in it, errors."""
    start, end = window
    sent = [r for r in records if not r.warmup and r.error != CANCELLED and start <= r.sent < end]
    ttft = TimeToFirstToken.values([r for r in sent if r.ok]) / 1000.0
    spread = distribution(ttft)
    seconds = end - start
    tokens = sum(tokens_between(r, start, end) for r in records if r.error != CANCELLED)
    return {
        "seconds": round(seconds, 3),
        "requests": len(sent),
        "errors": sum(1 for r in sent if r.error is not None),
        "ttft_p50_s": spread.p50,
        "ttft_p99_s": spread.p99,
        "output_tokens_per_min": round(tokens / seconds * 60.0, 1) if seconds > 0 else 0.0,
    }


def _weight_changes(arm: Arm) -> list[tuple[float, dict[str, int]]]:
    changes = []
    previous: dict[str, int] | None = None
    for entry in _events(arm, "period"):
        if previous is not None and entry["weights"] != previous:
            # In force once the front reloaded, not when the controller decided.
            changes.append((entry.get("applied_at", entry["t"]), entry["weights"]))
        previous = entry["weights"]
    return changes


def _region_of(record: RequestRecord) -> str | None:
    return record.instance.split("/", 1)[0] if record.instance else None


def shift_figures(config: ScenarioConfig, arm: Arm) -> dict[str, Any]:
    """When the weights first moved and settled after the brownout began, and how long the
    browned-out region kept serving the streams it had open then."""
    start, end = phase_windows(config, arm)["during"]
    changes = [(t, weights) for t, weights in _weight_changes(arm) if start <= t < end]
    if not changes:
        return {"first_shift_s": None, "first_shift_periods": None, "settled_s": None}
    first, _ = changes[0]
    settled, split = changes[-1]
    region = config.browned_region
    open_then = [
        r
        for r in arm.outcome.records
        if _region_of(r) == region and r.sent < first and (r.end or r.last_token or 0) > first
    ]
    kept = max(((r.end or r.last_token or first) - first for r in open_then), default=0.0)
    return {
        "first_shift_s": round(first - start, 3),
        "first_shift_periods": round((first - start) / config.period_s, 2),
        "settled_s": round(settled - start, 3),
        "settled_split": split,
        "streams_open_at_first_shift": len(open_then),
        "open_streams_kept_s": round(kept, 3),
        "open_streams_failed": sum(1 for r in open_then if r.error is not None),
    }


def summarise(config: ScenarioConfig, arms: Sequence[Arm]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "kind": "brownout",
        "brownout": config.brownout.model_dump(),
        "regions": list(config.region_names),
        "servers_per_region": config.bench.servers,
        "control_period_s": config.period_s,
        "objective_s": config.objective_s,
        "arms": {},
    }
    for arm in arms:
        windows = phase_windows(config, arm)
        entry: dict[str, Any] = {
            "phases": {
                phase: phase_figures(arm.outcome.records, windows[phase]) for phase in PHASES
            },
            "brownout_window_s": [
                round(windows["during"][0] - arm.origin, 3),
                round(windows["during"][1] - arm.origin, 3),
            ],
            "timeline": [_relative(entry, arm.origin) for entry in arm.timeline],
        }
        if arm.name == "controller":
            entry.update(shift_figures(config, arm))
        summary["arms"][arm.name] = entry
    done = summary["arms"]
    if set(done) == set(ARMS):
        with_controller = done["controller"]["phases"]["during"]["ttft_p99_s"]
        static = done["static"]["phases"]["during"]["ttft_p99_s"]
        ratio = with_controller / static if with_controller is not None and static else None
        periods = done["controller"].get("first_shift_periods")
        summary["done_when"] = {
            "first_shift_periods": periods,
            "first_shift_target_periods": FIRST_SHIFT_TARGET_PERIODS,
            "first_shift_met": periods is not None and periods <= FIRST_SHIFT_TARGET_PERIODS,
            "during_ttft_p99_s": {"controller": with_controller, "static": static},
            "during_ttft_p99_ratio": None if ratio is None else round(ratio, 3),
            "ratio_target": TTFT_RATIO_TARGET,
            "ratio_met": ratio is not None and ratio <= TTFT_RATIO_TARGET,
        }
    return summary


def _relative(entry: dict[str, Any], origin: float) -> dict[str, Any]:
    moved = {key: round(entry[key] - origin, 3) for key in ("t", "applied_at") if key in entry}
    return {**entry, **moved}


def ttft_p99_series(
    records: Sequence[RequestRecord], origin: float, duration: float, bin_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Client-side TTFT P99 (s) of the requests sent in each ``bin_s`` bin from ``origin``."""
    edges = np.arange(0.0, duration + bin_s, bin_s)
    centres, values = [], []
    for low, high in itertools.pairwise(edges):
        chosen = [
            r
            for r in records
            if r.ok and not r.warmup and low <= r.sent - origin < high and r.first_token
        ]
        if chosen:
            ttft = np.array([r.first_token - r.sent for r in chosen])  # type: ignore[operator]
            centres.append((low + high) / 2)
            values.append(float(np.percentile(ttft, 99)))
    return np.array(centres), np.array(values)


def write_plot(out: OutputDir, config: ScenarioConfig, arms: Sequence[Arm]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration = float(config.bench.duration or 0)
    figure, (weights_axis, ttft_axis) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    styles = {"controller": "-", "static": "--"}
    for arm in arms:
        periods = _events(arm, "period")
        times = [entry["t"] - arm.origin for entry in periods]
        for index, region in enumerate(config.region_names):
            weights_axis.step(
                times,
                [entry["weights"][region] for entry in periods],
                styles[arm.name],
                color=f"C{index}",
                where="post",
                label=f"{region} ({arm.name})",
            )
        centres, p99 = ttft_p99_series(
            arm.outcome.records, arm.origin, duration, max(config.period_s, 2.0)
        )
        ttft_axis.plot(centres, p99, styles[arm.name], color="black", marker=".", label=arm.name)
    start, end = phase_windows(config, arms[0])["during"]
    for axis in (weights_axis, ttft_axis):
        axis.axvspan(start - arms[0].origin, end - arms[0].origin, color="orange", alpha=0.15)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, ncol=2)
    weights_axis.set_ylabel("weight (of 100)")
    ttft_axis.set_ylabel("client TTFT P99 (s)")
    ttft_axis.axhline(config.objective_s, color="grey", linewidth=0.8, linestyle=":")
    ttft_axis.set_yscale("log")
    ttft_axis.set_xlabel("seconds from the start of the measured window")
    figure.suptitle(f"Brownout of {config.brownout.describe()} [EMULATED]")
    figure.tight_layout()
    with out.atomic(PLOT_FILE, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)
    return PLOT_FILE


def _seconds_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def scenario_lines(summary: dict[str, Any]) -> list[str]:
    """The scenario section of report.md."""
    lines = [
        "## Brownout scenario (EMULATED)",
        "",
        f"{len(summary['regions'])} regions x {summary['servers_per_region']} emulated servers; "
        f"control period {summary['control_period_s']:g} s, objective TTFT P99 "
        f"{summary['objective_s']:g} s; brownout of {summary['brownout']['region']}.",
        "",
        "| arm | phase | requests | errors | TTFT P50 (s) | TTFT P99 (s) | tokens/min |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, arm in summary["arms"].items():
        for phase in PHASES:
            figures = arm["phases"][phase]
            lines.append(
                f"| {name} | {phase} | {figures['requests']} | {figures['errors']} | "
                f"{_seconds_text(figures['ttft_p50_s'])} | "
                f"{_seconds_text(figures['ttft_p99_s'])} | {figures['output_tokens_per_min']} |"
            )
    controller = summary["arms"].get("controller", {})
    if controller.get("first_shift_s") is not None:
        lines += [
            "",
            f"- first weight change {controller['first_shift_s']:.2f} s after the brownout "
            f"({controller['first_shift_periods']:g} control periods); settled at "
            f"{controller['settled_s']:.2f} s on {controller['settled_split']}",
            f"- the browned-out region kept serving the {controller['streams_open_at_first_shift']}"
            f" streams open at the first change for {controller['open_streams_kept_s']:.2f} s "
            f"({controller['open_streams_failed']} failed)",
        ]
    elif controller:
        lines += ["", "- the controller did not change any weight during the brownout"]
    done = summary.get("done_when")
    if done:
        lines += [
            f"- TTFT P99 during the brownout: controller "
            f"{_seconds_text(done['during_ttft_p99_s']['controller'])} s vs static "
            f"{_seconds_text(done['during_ttft_p99_s']['static'])} s (ratio "
            f"{done['during_ttft_p99_ratio']}; target at most {done['ratio_target']:g})",
        ]
    return lines


def _write_report(out: OutputDir, results: RunResults, plots: list[str]) -> None:
    from inferfleet.cli.bench.report import render_report

    assert results.scenario is not None
    lines = scenario_lines(results.scenario)
    lines += ["", *(f"![{name}]({name})" for name in plots)]
    with out.atomic("report.md") as handle:
        handle.write(render_report(results, []) + "\n" + "\n".join(lines) + "\n")


def print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table("arm", "phase", "requests", "errors", "TTFT P50 s", "TTFT P99 s", "tokens/min")
    for name, arm in summary["arms"].items():
        for phase in PHASES:
            figures = arm["phases"][phase]
            table.add_row(
                name,
                phase,
                str(figures["requests"]),
                str(figures["errors"]),
                _seconds_text(figures["ttft_p50_s"]),
                _seconds_text(figures["ttft_p99_s"]),
                f"{figures['output_tokens_per_min']:.0f}",
            )
    console.print(table)
    controller = summary["arms"].get("controller", {})
    done = summary.get("done_when")
    if controller.get("first_shift_s") is not None:
        console.print(
            f"time to first weight change: {controller['first_shift_s']:.2f} s "
            f"= {controller['first_shift_periods']:g} control periods (target: within "
            f"{FIRST_SHIFT_TARGET_PERIODS:g}); settled split after {controller['settled_s']:.2f} s"
            f"; open streams kept on the old region for {controller['open_streams_kept_s']:.2f} s"
        )
    elif controller:
        console.print("[yellow]the controller did not change any weight during the brownout[/]")
    if done and done["during_ttft_p99_ratio"] is not None:
        console.print(
            f"TTFT P99 during the brownout: controller "
            f"{done['during_ttft_p99_s']['controller']:.3f} s vs static "
            f"{done['during_ttft_p99_s']['static']:.3f} s = {done['during_ttft_p99_ratio']:.2f}x "
            f"(target: at most {TTFT_RATIO_TARGET:g}x)"
        )
