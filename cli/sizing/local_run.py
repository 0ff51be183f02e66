"""``inferfleet simulate --local``: the fleet and load ``inferfleet bench --local`` would run.

The same :class:`~inferfleet.cli.bench.config.BenchConfig` plans the same steps
(loads, repeats, routing variants), the bench's seeded workload gives every
request the same prompt and length, and the emulator's own request parser counts
the prompt tokens each emulated server would count. Each step is simulated on a
fresh fleet of ``servers`` replicas of one :class:`ServerProfile`; the bench's
warm-up is simulated and left out of the figures as the bench leaves it out.

``network_s`` is the one-way time between the client and a server through nginx,
measured on this machine's local rehearsal (see ``LOCAL_NETWORK_S``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inferfleet.cli.bench.config import BenchConfig
from inferfleet.cli.bench.metrics import StepIdentity
from inferfleet.cli.bench.models import RunResults
from inferfleet.cli.bench.results import machine_info, now_iso, tool_info
from inferfleet.cli.bench.runner import Step, load_header, open_loop_arrivals, plan_steps
from inferfleet.cli.bench.workload import Arrivals, Workload, schedule_hash
from inferfleet.cli.errors import UserError
from inferfleet.cli.local.config import DEFAULT_MODEL, LocalFleetConfig
from inferfleet.cli.local.emulator import parse_request
from inferfleet.cli.sizing.figures import write_simulated_run
from inferfleet.cli.sizing.profile import ServerProfile
from inferfleet.cli.sizing.simulator import Load, SimulatedRun, Simulation
from inferfleet.constructs.routing import Routing

# One way, client -> nginx -> emulator on 127.0.0.1: half of what an idle emulated server
# adds to its prefill time, 1.9 ms (p10) to 4.1 ms (p50) measured with `inferfleet bench
# --local --servers 1 --users 1 --output-tokens 2` on the 2-core development machine.
LOCAL_NETWORK_S = 0.001
# What `bench --local` routes by unless told otherwise.
DEFAULT_ROUTING = LocalFleetConfig.model_fields["routing"].default
# Policies that draw without looking at the servers, so a measured run's choices can be
# replayed; least outstanding requests decides from the state and is simulated.
REPLAYABLE = (Routing.RANDOM, Routing.ROUND_ROBIN)


@dataclass
class LocalStep:
    step: Step
    routing: str
    run: SimulatedRun


def emulator_prompt_tokens(workload: Workload, profile: ServerProfile, *, chat: bool) -> np.ndarray:
    """Prompt tokens an emulated server counts for each request of the workload's pool."""
    counts = np.empty(len(workload), dtype=np.int64)
    for slot in range(len(workload)):
        spec = workload.spec(slot)
        body = {"messages": spec.chat_messages()} if chat else {"prompt": spec.prompt}
        counts[slot] = parse_request(
            body, chat=chat, profile=profile, model="simulated"
        ).prompt_tokens
    return counts


def output_tokens(workload: Workload) -> np.ndarray:
    return np.array([workload.spec(slot).output_tokens for slot in range(len(workload))])


def simulate_local(
    config: BenchConfig,
    profile: ServerProfile,
    *,
    routing: str = DEFAULT_ROUTING,
    network_s: float = LOCAL_NETWORK_S,
    replayed: dict[int, list[int]] | None = None,
) -> tuple[Workload, dict[float, Arrivals], list[LocalStep]]:
    """Every step of ``config`` on ``config.servers`` simulated replicas of ``profile``.

    ``replayed`` maps a step number to the server each of its requests went to in a
    measured run (see :func:`measured_routing`), replayed instead of drawn in the steps
    whose policy is in ``REPLAYABLE``.
    """
    workload = Workload.from_config(config)
    prompts = emulator_prompt_tokens(workload, profile, chat=config.endpoint == "chat")
    outputs = output_tokens(workload)
    arrivals = {rate: open_loop_arrivals(config, rate) for rate in config.rate}
    names = [f"emulator-{index}" for index in range(config.servers)]
    steps = []
    for step in plan_steps(config):
        policy = step.variant.value if step.variant is not None else routing
        simulation = Simulation(
            [profile] * config.servers,
            routing=policy,
            replica_names=names,
            network_s=network_s,
            seed=config.seed * 1000 + step.number,
        )
        run = simulation.run(
            _load(config, step, arrivals, workload),
            prompt_tokens=prompts,
            output_tokens=outputs,
            warmup_s=config.warmup,
            window=_window(config),
            replayed_routing=(replayed or {}).get(step.number, ()) if policy in REPLAYABLE else (),
        )
        steps.append(LocalStep(step, policy, run))
    return workload, arrivals, steps


def measured_routing(requests_csv: Path, servers: int) -> dict[int, list[int]]:
    """The emulated server of every request of a ``bench --local`` run, per step, in send order.

    With random routing this is the balancer's own sequence of draws, so a simulation
    that replays it faces the same luck as the measured run.
    """
    from inferfleet.cli.sizing.fit import read_requests_csv

    rows = read_requests_csv(requests_csv, flag="--replay-routing", needed=set())
    by_step: dict[int, dict[int, int]] = {}
    for number, row in enumerate(rows, start=2):
        instance = row.get("instance") or ""
        prefix, _, server = instance.rpartition("-")
        try:
            step, index, target = int(row["step"]), int(row["index"]), int(server)
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"--replay-routing: {requests_csv} line {number} has no step, index and "
                "emulator-N instance; give the requests.csv of an `inferfleet bench --local` run"
            ) from None
        if prefix != "emulator" or not 0 <= target < servers:
            raise UserError(
                f"--replay-routing: {requests_csv} line {number} names {instance!r}, not one of "
                f"the {servers} servers; give --servers as the measured run had them"
            )
        by_step.setdefault(step, {})[index] = target
    return {step: [order[i] for i in sorted(order)] for step, order in by_step.items()}


def _load(
    config: BenchConfig, step: Step, arrivals: dict[float, Arrivals], workload: Workload
) -> Load:
    if config.open_loop:
        return Load(arrivals=np.fromiter(arrivals[step.load], dtype=float))
    if config.duration is None:
        raise ValueError("a closed-loop simulation needs --duration")
    return Load(
        users=int(step.load),
        send_until=config.warmup + config.duration,
        conversations=workload.conversation_turns if workload.multi_turn else None,
        think_s=workload.think_time_s,
    )


def _window(config: BenchConfig) -> tuple[float, float] | None:
    if config.duration is None:
        return None
    return (config.warmup, config.warmup + config.duration)


def write_results(
    config: BenchConfig,
    profile: ServerProfile,
    network_s: float,
    workload: Workload,
    arrivals: dict[float, Arrivals],
    steps: list[LocalStep],
) -> RunResults:
    """results.json, requests.csv, report.md and plots in ``config.out``, as bench writes them."""
    identified = []
    for local in steps:
        step = local.step
        identity = StepIdentity(
            id=step.number,
            variant=step.variant_name,
            repeat=step.repeat,
            load=step.load,
            users=None if config.open_loop else int(step.load),
            rate=step.load if config.open_loop else None,
            instances=config.instance_count,
            schedule_hash=schedule_hash(
                workload, [arrivals[step.load]] if config.open_loop else []
            ),
        )
        identified.append((identity, local.run))
    return write_simulated_run(
        config.out,
        _header(config, profile, network_s, workload, arrivals),
        identified,
        open_loop=config.open_loop,
        price_per_hour=config.price_per_hour,
    )


def _header(
    config: BenchConfig,
    profile: ServerProfile,
    network_s: float,
    workload: Workload,
    arrivals: dict[float, Arrivals],
) -> dict:
    """The bench's run header for the fleet ``bench --local`` would start, marked simulated."""
    return {
        "tool": {**tool_info(), "name": "inferfleet simulate"},
        "machine": machine_info(),
        "target": {
            "api": "openai",
            "url": f"simulated local fleet ({config.servers} servers)",
            "model": DEFAULT_MODEL,
            "emulated": False,
            "simulated": True,
            "local": {"servers": config.servers, "mode": profile.batching},
            "instances": config.instance_count,
            "price_per_hour": config.price_per_hour,
            "fleet": None,  # as bench --local writes it: no fleet file behind the target
            "profile": profile.model_dump(),
            "network_ms": round(network_s * 1000.0, 3),
        },
        "workload": {
            **workload.describe(),
            "hash": schedule_hash(workload, [arrivals[rate] for rate in config.rate]),
        },
        # No client process ran: the simulation sends every request on time.
        "load": {**load_header(config), "workers": 0},
        "variants": [variant.name for variant in config.compare] or ["default"],
        "started_at": now_iso(),
    }
