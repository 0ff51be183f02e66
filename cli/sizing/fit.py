"""``inferfleet profile fit``: a server profile from a bench run of any endpoint.

The run needs several closed-loop concurrency steps (``--users 1,5,10,20,40`` with
``--instances`` set, or one instance), ideally with varied prompt lengths:

- Decode: every step's ITL p50 is one decode step of the batch its concurrency per
  instance gives, ``decode_base + decode_per_sequence x min(c, slots)`` (at least one
  sequence); a least-squares fit for each candidate ``slots`` keeps the best, a larger
  one only when it fits clearly better (past the slots, ITL stops growing).
- Prefill: at the steps with at most one request per instance, each request's TTFT
  is its own prefill, ``prefill_base + prefill_per_token x prompt tokens``, fitted by
  least squares over the requests.

Then every step is replayed by the simulator with the fitted profile (same users,
instances, routing and request sizes as measured), and its TTFT p50, ITL p50 and
tokens/min are set next to the measured ones: the fit's error per step.

A client measures a prefill plus the network round trip: without ``network_s`` the
fitted ``prefill_base_s`` includes it (and a simulation with the same ``network_s``
puts it back).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferfleet.cli.bench.models import MAX_RESULTS_BYTES, RunResults, StepResult
from inferfleet.cli.errors import UserError
from inferfleet.cli.sizing.figures import step_summary
from inferfleet.cli.sizing.profile import Batching, ServerProfile
from inferfleet.cli.sizing.simulator import Load, Simulation
from inferfleet.cli.user_files import read_user_file, regular_file_size
from inferfleet.constructs.routing import Routing

# A step without a routing variant ran on the endpoint as deployed: LOR is the fleet default.
DEFAULT_ROUTING = Routing.LEAST_OUTSTANDING_REQUESTS
COMPARED = (
    ("ttft_ms", "p50", "TTFT p50"),
    ("itl_ms", "p50", "ITL p50"),
    ("output_tokens_per_min", None, "tokens/min"),
)


@dataclass
class MeasuredStep:
    """One closed-loop step of the bench run and the requests it sent, in send order."""

    number: int
    users: int
    routing: str
    result: StepResult
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    ttft_s: np.ndarray  # measured requests only
    measured_prompts: np.ndarray


@dataclass
class BenchRun:
    instances: int
    warmup_s: float
    duration_s: float
    steps: list[MeasuredStep]


@dataclass
class StepFit:
    number: int
    users: int
    measured: dict[str, float | None]
    simulated: dict[str, float | None]

    def errors(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for label in self.measured:
            real, predicted = self.measured[label], self.simulated[label]
            out[label] = predicted / real - 1 if real and predicted is not None else None
        return out


@dataclass
class Fit:
    profile: ServerProfile
    steps: list[StepFit]
    slots_seen: bool  # some step had more requests per instance than the slots

    def as_dict(self) -> dict:
        return {
            "profile": self.profile.model_dump(exclude_none=True),
            "slots_seen": self.slots_seen,
            "steps": [
                {
                    "step": step.number,
                    "users": step.users,
                    "measured": step.measured,
                    "simulated": step.simulated,
                    "errors": step.errors(),
                }
                for step in self.steps
            ],
        }


RESULTS_FILE = "the results.json a bench run wrote"


REQUEST_COLUMNS = {"step", "index", "warmup", "ttft_ms", "prompt_tokens", "output_tokens", "error"}


def read_bench_run(results_path: Path, requests_path: Path | None = None) -> BenchRun:
    """The closed-loop steps of a bench run, with the requests each one sent."""
    from pydantic import ValidationError

    content = read_user_file(
        results_path, flag="RESULTS", what=RESULTS_FILE, limit=MAX_RESULTS_BYTES
    )
    try:
        results = RunResults.model_validate_json(content)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "file"
        raise UserError(
            f"RESULTS: {results_path} is not an inferfleet bench results.json ({where}: "
            f"{first['msg']}); give {RESULTS_FILE}"
        ) from None
    load = results.load
    if results.open_loop or not load.get("duration"):
        raise UserError(
            "RESULTS: profile fit needs a closed-loop run with --duration (several --users "
            "steps); this one is " + ("open loop" if results.open_loop else "bounded by --requests")
        )
    requests_path = requests_path or results_path.with_name("requests.csv")
    rows = read_requests_csv(requests_path, flag="--requests", needed=REQUEST_COLUMNS)
    default_instances = int(results.target.get("instances") or 1)
    instances = {step.instances or default_instances for step in results.steps}
    if len(instances) > 1:
        raise UserError(
            "RESULTS: the steps ran on different instance counts (--scale); fit a run "
            "with one instance count"
        )
    steps = []
    for step in results.steps:
        if not step.valid or step.users is None:
            continue
        mine = sorted(
            (row for row in rows if int(row["step"]) == step.id), key=lambda r: int(r["index"])
        )
        ok = [row for row in mine if not row["error"] and row["ttft_ms"]]
        if not ok:
            continue
        measured = [row for row in ok if row["warmup"] != "True"]
        routing = step.variant.removeprefix("routing=")
        steps.append(
            MeasuredStep(
                number=step.id,
                users=step.users,
                routing=_routing(routing),
                result=step,
                prompt_tokens=np.array([int(row["prompt_tokens"]) for row in ok]),
                output_tokens=np.array([int(row["output_tokens"]) for row in ok]),
                ttft_s=np.array([float(row["ttft_ms"]) / 1000.0 for row in measured]),
                measured_prompts=np.array([int(row["prompt_tokens"]) for row in measured]),
            )
        )
    if len({step.users for step in steps}) < 2:
        raise UserError(
            "RESULTS: profile fit needs at least two valid steps of different --users "
            "(e.g. --users 1,5,10,20,40); this run has "
            f"{len(steps)} usable step(s)"
        )
    return BenchRun(instances.pop(), float(load["warmup"]), float(load["duration"]), steps)


# Rows are held as dicts, several times the file's size in memory.
MAX_REQUESTS_CSV_BYTES = 512 * 2**20


def read_requests_csv(path: Path, *, flag: str, needed: set[str]) -> list[dict[str, str]]:
    """The rows of a requests.csv that inferfleet bench wrote, with ``needed`` columns.

    A file that is not one (another encoding, a binary, a line csv cannot parse) is named
    with its line, never a traceback.
    """
    what = "the requests.csv inferfleet bench wrote"
    size = regular_file_size(path, flag=flag, what=what)
    if size > MAX_REQUESTS_CSV_BYTES:
        raise UserError(
            f"{flag}: {path} is {size / 2**20:,.0f} MiB; its rows are read whole, up to "
            f"{MAX_REQUESTS_CSV_BYTES // 2**20} MiB (about 3 million requests): give a shorter "
            "run's"
        )
    reader = None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
    except OSError as error:
        raise UserError(f"{flag}: cannot read {path} ({error.strerror}); give {what}") from None
    except UnicodeDecodeError:
        raise UserError(f"{flag}: {path} is not UTF-8 text; give {what}") from None
    except csv.Error as error:
        line = reader.reader.line_num if reader is not None else 1
        raise UserError(f"{flag}: {path} line {line}: {error}; give {what}") from None
    if rows and not needed <= set(rows[0]):
        raise UserError(
            f"{flag}: {path} lacks {', '.join(sorted(needed - set(rows[0])))}; give {what}"
        )
    return rows


def closed_form(run: BenchRun, *, batching: Batching, network_s: float) -> ServerProfile:
    """First estimates, from the measured ITL per step and TTFT at low concurrency."""
    concurrency = np.array([step.users / run.instances for step in run.steps])
    itl = np.array([_itl_p50(step.result) for step in run.steps]) / 1000.0
    usable = np.isfinite(itl)
    if usable.sum() < 2:
        raise UserError("RESULTS: profile fit needs inter-token latencies in at least two steps")
    best = None
    for slots in range(1, max(1, math.ceil(concurrency.max())) + 1):
        batch = np.clip(concurrency[usable], 1, slots)
        design = np.column_stack((np.ones_like(batch), batch))
        (base, per_sequence), *_ = np.linalg.lstsq(design, itl[usable], rcond=None)
        residual = float(np.sum((design @ (base, per_sequence) - itl[usable]) ** 2))
        # A larger slots value only counts when it fits clearly better.
        if best is None or residual < best[0] * 0.9:
            best = (residual, slots, base, per_sequence)
    _, slots, base, per_sequence = best  # type: ignore[misc]
    per_sequence = max(0.0, float(per_sequence))
    base = max(1e-6, float(base))
    alone = [step for step in run.steps if step.users <= run.instances]
    low = alone or [min(run.steps, key=lambda step: step.users)]
    prompts = np.concatenate([step.measured_prompts for step in low]).astype(float)
    ttft = np.concatenate([step.ttft_s for step in low])
    if np.ptp(prompts) > 0:
        design = np.column_stack((np.ones_like(prompts), prompts))
        (prefill_base, per_token), *_ = np.linalg.lstsq(design, ttft, rcond=None)
    else:
        # One prompt length cannot split the two: a prefill step reads the weights once,
        # as a decode step does, and the rest is per token.
        prefill_base = base + per_sequence
        per_token = (float(np.median(ttft)) - prefill_base) / max(prompts[0], 1.0)
    return ServerProfile(
        batching=batching,
        slots=slots,
        prefill_base_s=max(0.0, float(prefill_base) - 2 * network_s),
        prefill_per_token_s=max(0.0, float(per_token)),
        decode_base_s=base,
        decode_per_sequence_s=per_sequence,
    )


def simulate_step(
    run: BenchRun, step: MeasuredStep, profile: ServerProfile, network_s: float
) -> StepResult:
    simulation = Simulation(
        [profile] * run.instances, routing=step.routing, network_s=network_s, seed=step.number
    )
    simulated = simulation.run(
        Load(users=step.users, send_until=run.warmup_s + run.duration_s),
        prompt_tokens=step.prompt_tokens,
        output_tokens=step.output_tokens,
        warmup_s=run.warmup_s,
        window=(run.warmup_s, run.warmup_s + run.duration_s),
    )
    return step_summary(simulated, open_loop=False)


def _itl_p50(step: StepResult) -> float:
    figures = step.latency.get("itl_ms")
    return figures.p50 if figures is not None and figures.p50 is not None else math.nan


def _figures(step: StepResult) -> dict[str, float | None]:
    out = {}
    for metric, point, label in COMPARED:
        value = getattr(step, metric) if point is None else getattr(step.latency[metric], point)
        out[label] = None if value is None else float(value)
    return out


def fit_profile(
    run: BenchRun,
    *,
    batching: Batching = "continuous",
    network_s: float = 0.0,
    source: str | None = None,
) -> Fit:
    """The profile of the run, and each step simulated with it next to what was measured."""
    profile = closed_form(run, batching=batching, network_s=network_s).model_copy(
        update={"source": source}
    )
    steps = [
        StepFit(
            step.number,
            step.users,
            _figures(step.result),
            _figures(simulate_step(run, step, profile, network_s)),
        )
        for step in run.steps
    ]
    reached = max(step.users for step in run.steps) / run.instances
    return Fit(profile=profile, steps=steps, slots_seen=profile.slots < reached)


def _routing(variant: str) -> Routing:
    try:
        return Routing.parse(variant)
    except ValueError:
        return DEFAULT_ROUTING
