"""``simulate`` and ``profile fit``: a fleet's figures before buying it, from one server profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from inferfleet.cli.errors import UserError

LOAD = "Load"
FLEET = "Fleet"
OUTPUT = "Output"
# Defaults of the flags shared with `inferfleet bench` are the bench config's: a flag
# left out is not passed, so `simulate --local` and `bench --local` agree unasked.
SAME_AS_BENCH = "same default as inferfleet bench"


def simulate(
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Simulate the fleet and load `inferfleet bench --local` with the same flags runs.",
            rich_help_panel=FLEET,
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Simulate a service of this fleet file: each region's pools (--at max or "
            "min instances), the service's routing, its share of --load by --weights.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(
            help="--config: the service; default the fleet's only LLM service.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    at: Annotated[
        str,
        typer.Option(
            help="--config: size of each pool, the fleet file's max or min.", rich_help_panel=FLEET
        ),
    ] = "max",
    weights: Annotated[
        str | None,
        typer.Option(
            help="--config: traffic weights per region, e.g. us-east-1=2; default equal.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    load: Annotated[
        str | None,
        typer.Option(
            help="--config: open-loop load over the fleet, e.g. 3Mtok/min or 200req/s; or "
            "a schedule of TIME=LOAD points from the start of the measured window, e.g. "
            "0m=1Mtok/min,30m=3Mtok/min,60m=1Mtok/min (--duration: to the last point).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    load_shape: Annotated[
        str | None,
        typer.Option(
            help="--load schedule: ramp (straight lines between points, default) or step "
            "(each load held until the next point).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    trace: Annotated[
        Path | None,
        typer.Option(
            help="--config: replay this timestamped trace (as `inferfleet bench --trace` "
            "does) against the fleet, each session in one region drawn by --weights.",
            rich_help_panel=LOAD,
        ),
    ] = None,
    trace_speed: Annotated[
        float | None,
        typer.Option(help="--trace: replay this many times faster.", rich_help_panel=LOAD),
    ] = None,
    autoscale: Annotated[
        bool,
        typer.Option(
            "--autoscale",
            help="--config: start each pool at --at and scale it by the service's policy "
            "(requests per target per minute, cooldowns; a new instance serves after the "
            "health-check grace period); each step's timeline shows it minute by minute.",
            rich_help_panel=FLEET,
        ),
    ] = False,
    servers: Annotated[
        int | None,
        typer.Option(help=f"--local: emulated servers ({SAME_AS_BENCH}).", rich_help_panel=FLEET),
    ] = None,
    local_mode: Annotated[
        str | None,
        typer.Option(
            help="--local: continuous or static batching; default: the profile's.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    server_profile: Annotated[
        Path | None,
        typer.Option(
            help="JSON server profile (e.g. from `inferfleet profile fit`); default: the "
            "local emulator's.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    routing: Annotated[
        str | None,
        typer.Option(
            help="least_outstanding_requests (default), random or round_robin.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    replay_routing: Annotated[
        Path | None,
        typer.Option(
            help="--local: requests.csv of a measured `bench --local` run; each request goes to "
            "the server it went to there (random routing's own draws).",
            rich_help_panel=FLEET,
        ),
    ] = None,
    network_ms: Annotated[
        float | None,
        typer.Option(
            help="One-way client-to-server time in ms; default: measured on the local rehearsal.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    users: Annotated[
        str | None,
        typer.Option(
            help="Closed loop: concurrent users per step, e.g. 4,20,40.", rich_help_panel=LOAD
        ),
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            help="Open loop: Poisson arrival rates (req/s) per step.", rich_help_panel=LOAD
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(help=f"Measured seconds per step ({SAME_AS_BENCH}).", rich_help_panel=LOAD),
    ] = None,
    warmup: Annotated[
        float | None,
        typer.Option(help=f"Seconds of warm-up per step ({SAME_AS_BENCH}).", rich_help_panel=LOAD),
    ] = None,
    prompt_tokens: Annotated[
        str | None,
        typer.Option(help="N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.", rich_help_panel=LOAD),
    ] = None,
    output_tokens: Annotated[
        str | None,
        typer.Option(help="N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.", rich_help_panel=LOAD),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="JSONL with a 'prompt' (and optional 'output_tokens') per line.",
            rich_help_panel=LOAD,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of lengths, prompts and arrivals.", rich_help_panel=LOAD),
    ] = None,
    arrival: Annotated[
        str | None,
        typer.Option(
            help=f"Open loop: poisson, constant or gamma spacing ({SAME_AS_BENCH}).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    burstiness: Annotated[
        float | None,
        typer.Option(
            help="--arrival gamma: shape of the gaps; 1 is Poisson.", rich_help_panel=LOAD
        ),
    ] = None,
    prefix_tokens: Annotated[
        int | None,
        typer.Option(
            help="Tokens of a shared system prompt sent before the prompt of "
            "--prefix-fraction of requests (of conversations, with --turns).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    prefix_fraction: Annotated[
        float | None,
        typer.Option(
            help="--prefix-tokens: share of requests that carry the shared prefix.",
            rich_help_panel=LOAD,
        ),
    ] = None,
    turns: Annotated[
        str | None,
        typer.Option(
            help="Closed loop: turns of each user's conversations, each carrying the ones "
            f"before it as history ({SAME_AS_BENCH}).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    think_time: Annotated[
        str | None,
        typer.Option(
            help="--turns: pause after an answer before the conversation's next turn (2s).",
            rich_help_panel=LOAD,
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            help="completions or chat (how the servers count prompt tokens).", rich_help_panel=LOAD
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help="A/B variants, e.g. routing=least_outstanding_requests,random.",
            rich_help_panel=LOAD,
        ),
    ] = None,
    repeat: Annotated[
        int | None,
        typer.Option(
            help="Runs of each variant per step, interleaved A B A B.", rich_help_panel=LOAD
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            help="Directory for results.json, requests.csv, report.md and plots.",
            rich_help_panel=OUTPUT,
        ),
    ] = Path("simulate-results"),
    price_per_hour: Annotated[
        float | None,
        typer.Option(
            help="Price of one instance per hour, for cost per million output tokens.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    instances: Annotated[
        int | None,
        typer.Option(
            help="Instances the price applies to (default with --local: --servers).",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results.json to stdout.", rich_help_panel=OUTPUT)
    ] = False,
) -> None:
    """Simulate a fleet's TTFT, inter-token latency, E2E and tokens/min, labelled SIMULATED.

    With --local: exactly the fleet and load `inferfleet bench --local` with the same
    flags would run, written as the bench writes it (results.json, requests.csv,
    report.md, plots), so the two compare file to file.
    """
    if config is not None:
        if local:
            raise UserError(
                "--local: simulates the local rehearsal; --config a fleet file: pick one"
            )
        local_only = {
            "--servers": servers, "--local-mode": local_mode, "--replay-routing": replay_routing,
            "--users": users, "--rate": rate, "--dataset": dataset, "--endpoint": endpoint,
            "--compare": compare, "--repeat": repeat, "--price-per-hour": price_per_hour,
            "--instances": instances, "--turns": turns, "--think-time": think_time,
            "--prefix-fraction": prefix_fraction,
            # A trace's prefix_id needs its length; other prefixes are in --prompt-tokens.
            "--prefix-tokens": None if trace is not None else prefix_tokens,
        }  # fmt: skip
        given = [flag for flag, value in local_only.items() if value is not None]
        if given:
            raise UserError(
                f"{given[0]}: applies to --local; with --config the fleet file gives the fleet "
                "and its prices, and --load (or --trace) the load"
            )
        _simulate_fleet(
            config, service=service, at=at, weights=weights, load=load, load_shape=load_shape,
            trace=trace, trace_speed=trace_speed, prefix_tokens=prefix_tokens,
            autoscale=autoscale, duration=duration, warmup=warmup, prompt_tokens=prompt_tokens,
            output_tokens=output_tokens, seed=seed, arrival=arrival, burstiness=burstiness,
            server_profile=server_profile, routing=routing, network_ms=network_ms, out=out,
            json_output=json_output,
        )  # fmt: skip
        return
    if not local:
        raise UserError(
            "simulate: give --local to simulate the local rehearsal's fleet "
            "(the same flags as `inferfleet bench --local`), or --config FLEET.yaml"
        )
    for flag, value in (
        ("--service", service), ("--weights", weights), ("--load", load),
        ("--load-shape", load_shape), ("--trace", trace), ("--trace-speed", trace_speed),
        ("--autoscale", autoscale or None),
    ):  # fmt: skip
        if value is not None:
            raise UserError(f"{flag}: applies to --config FLEET.yaml; drop it with --local")
    from inferfleet.cli.sizing.local_run import DEFAULT_ROUTING, LOCAL_NETWORK_S

    config = _bench_config(
        local=True, servers=servers, users=users, rate=rate, duration=duration, warmup=warmup,
        prompt_tokens=prompt_tokens, output_tokens=output_tokens, dataset=dataset, seed=seed,
        arrival=arrival, burstiness=burstiness, endpoint=endpoint, compare=compare, repeat=repeat,
        out=out, price_per_hour=price_per_hour, instances=instances, turns=turns,
        think_time=think_time, prefix_tokens=prefix_tokens, prefix_fraction=prefix_fraction,
    )  # fmt: skip
    if config.requests is not None or config.duration is None:
        raise UserError("--duration: a simulated step runs for a duration; give --duration SECONDS")
    if routing is not None and compare:
        raise UserError("--routing: --compare sets the routing of each step; drop --routing")
    profile = _profile(server_profile, local_mode)
    network_s = LOCAL_NETWORK_S if network_ms is None else _network(network_ms)
    policy = _routing(routing) if routing is not None else DEFAULT_ROUTING

    from rich.console import Console

    from inferfleet.cli.sizing.local_run import measured_routing, simulate_local, write_results

    replayed = measured_routing(replay_routing, config.servers) if replay_routing else None
    console = Console(stderr=True)
    with console.status(f"simulating {len(config.loads)} load step(s) on {config.servers} servers"):
        workload, arrivals, steps = simulate_local(
            config, profile, routing=policy, network_s=network_s, replayed=replayed
        )
        results = write_results(config, profile, network_s, workload, arrivals, steps)
    if json_output:
        typer.echo(results.model_dump_json(indent=2))
        return
    events = sum(step.run.events for step in steps)
    wall = sum(step.run.wall_s for step in steps)
    typer.secho(
        f"{len(steps)} step(s) simulated ({events:,} events in {wall:.2f} s); "
        f"results in {config.out}/ (SIMULATED)",
        err=True,
    )


def _simulate_fleet(
    config: Path,
    *,
    service: str | None,
    at: str,
    weights: str | None,
    load: str | None,
    load_shape: str | None,
    trace: Path | None,
    trace_speed: float | None,
    prefix_tokens: int | None,
    autoscale: bool,
    duration: float | None,
    warmup: float | None,
    prompt_tokens: str | None,
    output_tokens: str | None,
    seed: int | None,
    arrival: str | None,
    burstiness: float | None,
    server_profile: Path | None,
    routing: str | None,
    network_ms: float | None,
    out: Path,
    json_output: bool,
) -> None:
    import dataclasses

    import numpy as np

    from inferfleet.cli.bench.config import MAX_REQUESTS_PER_STEP
    from inferfleet.cli.sizing.fleet_run import FLEET_WARMUP_S, simulate_fleet, write_fleet_results
    from inferfleet.cli.sizing.fleet_shapes import fleet_service
    from inferfleet.cli.sizing.planner import Demand, parse_load, parse_load_schedule
    from inferfleet.cli.sizing.prices import PriceLookup, load_prices

    if at not in ("max", "min"):
        raise UserError(f"--at: use max or min (the fleet file's bounds of each pool), not {at!r}")
    warmup_s = FLEET_WARMUP_S if warmup is None else warmup
    given: dict = {}
    if trace is not None:
        from inferfleet.cli.bench.workload import Workload

        for flag, value in (
            ("--load", load), ("--load-shape", load_shape), ("--duration", duration),
            ("--prompt-tokens", prompt_tokens), ("--output-tokens", output_tokens),
            ("--arrival", arrival), ("--burstiness", burstiness),
        ):  # fmt: skip
            if value is not None:
                raise UserError(
                    f"{flag}: the trace sets when each request arrives, its sizes and how long "
                    f"the run lasts; drop {flag}"
                )
        checked = _bench_config(
            target="http://simulated", trace=trace, trace_speed=trace_speed, warmup=warmup_s,
            prefix_tokens=prefix_tokens, seed=seed,
        )  # fmt: skip
        replay = Workload.from_config(checked)
        assert replay.trace is not None
        span = replay.trace.span_s / checked.trace_speed
        if span <= warmup_s:
            raise UserError(
                f"--warmup: the trace lasts {span:g} s at --trace-speed {checked.trace_speed:g}, "
                f"no longer than the {warmup_s:g} s warm-up; lower --warmup (0 measures it all)"
            )
        counts = np.array([replay.sizes(row) for row in range(len(replay.trace))])
        context = float(counts[:, 0].mean() + counts[:, 1].mean() / 2)
        given = {"trace": replay, "trace_speed": checked.trace_speed, "trace_path": trace}
    else:
        if load is None:
            raise UserError(
                "--load: give the fleet's load, e.g. --load 3Mtok/min or --load 200req/s, or "
                "--trace FILE"
            )
        schedule = None
        # The bench's own checks of every load flag, on a stand-in open-loop step.
        checked = _bench_config(
            target="http://simulated", rate=[1.0], warmup=warmup_s, duration=duration,
            prompt_tokens=prompt_tokens, output_tokens=output_tokens, seed=seed,
            arrival=arrival, burstiness=burstiness,
        )  # fmt: skip
        sizes_only = Demand(0.0, checked.prompt_tokens, checked.output_tokens, seed=checked.seed)
        mean_output = sizes_only.mean_output_tokens
        context = sizes_only.context_tokens
        if "=" in load:
            shape = load_shape or "ramp"
            if shape not in ("ramp", "step"):
                raise UserError(f"--load-shape: use ramp or step, not {shape!r}")
            try:
                schedule = parse_load_schedule(load, mean_output, shape)  # type: ignore[arg-type]
            except ValueError as error:
                raise UserError(f"--load: {error}") from None
            last = schedule.points[-1][0]
            if duration is None and last > 0:
                checked = checked.model_copy(update={"duration": last})
            given = {"schedule": schedule}
        else:
            if load_shape is not None:
                raise UserError("--load-shape: shapes a --load schedule (TIME=LOAD,...); add one")
            try:
                given = {"requests_per_s": parse_load(load, mean_output)}
            except ValueError as error:
                raise UserError(f"--load: {error}") from None
        assert checked.duration is not None
        horizon = warmup_s + checked.duration
        expected = (
            schedule.cumulative(horizon - warmup_s) + schedule.points[0][1] * warmup_s
            if schedule is not None
            else given["requests_per_s"] * horizon
        )
        if expected > MAX_REQUESTS_PER_STEP:
            raise UserError(
                f"--load: about {expected:,.0f} requests in {horizon:g} s, more than the "
                f"{MAX_REQUESTS_PER_STEP:,} one simulated run holds; shorten --duration or "
                "lower --load"
            )
        given.update(
            prompt_tokens=checked.prompt_tokens, output_tokens=checked.output_tokens,
            duration_s=checked.duration, arrival=checked.arrival, burstiness=checked.burstiness,
        )  # fmt: skip
    fleet = fleet_service(
        config, service, context_tokens=context, price=PriceLookup(load_prices()),
        weights=weights,
    )  # fmt: skip
    if server_profile is not None:
        fitted = _profile(server_profile, None)
        fleet = dataclasses.replace(fleet, regions=tuple(
            dataclasses.replace(region, pools=tuple(
                dataclasses.replace(pool, profile=fitted) for pool in region.pools))
            for region in fleet.regions))  # fmt: skip
    if routing is not None:
        fleet = dataclasses.replace(fleet, routing=_routing(routing))
    network_s = 0.0 if network_ms is None else _network(network_ms)
    from rich.console import Console

    console = Console(stderr=True, quiet=json_output)
    with console.status(f"simulating {fleet.service} in {len(fleet.regions)} region(s)"):
        simulated = simulate_fleet(
            fleet, warmup_s=warmup_s, seed=checked.seed, at=at,  # type: ignore[arg-type]
            network_s=network_s, autoscale=autoscale, **given,
        )  # fmt: skip
        results = write_fleet_results(out, fleet, simulated, at=at)  # type: ignore[arg-type]
    if json_output:
        typer.echo(results.model_dump_json(indent=2))
        return
    for item, step in zip(simulated.runs, results.steps, strict=True):
        ttft = step.latency["ttft_ms"].p99
        scaled = (
            f" (mean {sum(item.mean_instances):.1f}, peak {item.peak_instances})"
            if autoscale
            else ""
        )
        typer.secho(
            f"{item.region.name}: {sum(item.instances)} instances{scaled}, {item.rate:.1f} "
            f"req/s, {step.output_tokens_per_min:,.0f} output tokens/min, TTFT P99 "
            + ("-" if ttft is None else f"{ttft / 1000:.3f} s")
            + f" ({item.run.events:,} events in {item.run.wall_s:.2f} s)",
            err=True,
        )
    typer.secho(f"results in {out}/ (SIMULATED)", err=True)


def _bench_config(**given: object):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from inferfleet.cli.bench.config import BenchConfig, describe_validation_error

    fields = {key: value for key, value in given.items() if value is not None}
    try:
        return BenchConfig.model_validate(fields)
    except ValidationError as error:
        raise UserError(describe_validation_error(error)) from None


def _profile(path: Path | None, batching: str | None):  # type: ignore[no-untyped-def]
    from typing import get_args

    from inferfleet.cli.sizing.profile import Batching, ServerProfile, read_profile

    profile = read_profile(path, flag="--server-profile") if path else ServerProfile()
    if batching is None:
        return profile
    if batching not in get_args(Batching):
        raise UserError(f"--local-mode: use continuous or static (got {batching!r})")
    return profile.model_copy(update={"batching": batching})


def _routing(routing: str) -> str:
    from inferfleet.constructs.routing import Routing

    try:
        return Routing.parse(routing)
    except ValueError as error:
        raise UserError(f"--routing: {error}") from None


def _network(milliseconds: float) -> float:
    import math

    if not (math.isfinite(milliseconds) and 0 <= milliseconds <= 10_000):
        raise UserError(f"--network-ms: {milliseconds} is not between 0 and 10000 ms")
    return milliseconds / 1000.0


def fit(
    results: Annotated[
        Path,
        typer.Argument(
            help="results.json of an `inferfleet bench` run with several --users steps."
        ),
    ],
    requests: Annotated[
        Path | None,
        typer.Option(
            help="Its requests.csv; default: the one next to RESULTS.", show_default=False
        ),
    ] = None,
    network_ms: Annotated[
        float,
        typer.Option(
            help="One-way client-to-server time in ms, left out of the prefill; with 0 the "
            "fitted prefill_base_s includes the round trip."
        ),
    ] = 0.0,
    batching: Annotated[
        str, typer.Option(help="The server's batching: continuous or static.")
    ] = "continuous",
    out: Annotated[Path, typer.Option(help="Where to write the fitted profile (JSON).")] = Path(
        "profile.json"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the fit as JSON.")] = False,
) -> None:
    """Fit a server profile to a bench run and print the fit's error per step.

    The profile (slots, prefill and decode costs) is what `inferfleet simulate`,
    `inferfleet plan` and `inferfleet local up --server-profile` read.
    """
    from typing import get_args

    from inferfleet.cli.sizing.fit import fit_profile, read_bench_run
    from inferfleet.cli.sizing.profile import Batching, check_profile_out, write_profile

    if batching not in get_args(Batching):
        raise UserError(f"--batching: use continuous or static (got {batching!r})")
    network_s = _network(network_ms)
    check_profile_out(out)
    run = read_bench_run(results, requests)
    outcome = fit_profile(run, batching=batching, network_s=network_s,  # type: ignore[arg-type]
                          source=f"inferfleet profile fit {results}")  # fmt: skip
    write_profile(outcome.profile, out)
    if as_json:
        typer.echo(json.dumps(outcome.as_dict(), indent=2))
        return
    _print_fit(outcome, out)


def _print_fit(outcome, out: Path) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console
    from rich.table import Table

    console = Console()
    profile = outcome.profile
    console.print(
        f"fitted profile ({profile.batching}, {profile.slots} slots) written to {out}:\n"
        f"  prefill {profile.prefill_base_s * 1000:.2f} ms + "
        f"{profile.prefill_per_token_s * 1000:.4f} ms/token, decode step "
        f"{profile.decode_base_s * 1000:.2f} ms + {profile.decode_per_sequence_s * 1000:.3f} "
        "ms/sequence"
    )
    if not outcome.slots_seen:
        console.print(
            f"[yellow]slots: no step had more than {profile.slots} requests per instance, so "
            "the server may have more slots; add a step with more --users[/]"
        )
    table = Table("step", "users", "metric", "measured", "simulated", "error")
    for step in outcome.steps:
        for label, error in step.errors().items():
            table.add_row(
                str(step.number), str(step.users), label, _number(step.measured[label]),
                _number(step.simulated[label]), "-" if error is None else f"{error:+.1%}",
            )  # fmt: skip
    console.print(table)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


PLAN = "Plan"
PLAN_WRITER = "inferfleet plan"


def plan(
    load: Annotated[
        str,
        typer.Option(
            help="Average load: output tokens or requests per s, min or h, e.g. 3Mtok/min, "
            "3000000tok/min or 200req/s.",
            show_default=False,
            rich_help_panel=LOAD,
        ),
    ],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Fleet description (YAML).")
    ] = Path("fleet.yaml"),
    service: Annotated[
        str | None,
        typer.Option(
            help="Service to size; default: the fleet's only LLM service.", show_default=False
        ),
    ] = None,
    slo: Annotated[
        str,
        typer.Option(
            help="P99 (or other point) limits, e.g. ttft_p99=1s,itl_p99=60ms.", rich_help_panel=LOAD
        ),
    ] = "ttft_p99=1s",
    prompt_tokens: Annotated[
        str,
        typer.Option(
            help="Prompt tokens: N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.",
            rich_help_panel=LOAD,
        ),
    ] = "lognormal:300:0.5",
    output_tokens: Annotated[
        str,
        typer.Option(
            help="Output tokens: N, uniform:MIN:MAX or lognormal:MEDIAN:SIGMA.",
            rich_help_panel=LOAD,
        ),
    ] = "lognormal:250:0.5",
    peak_factor: Annotated[
        float,
        typer.Option(
            help="Peak load over the average; max is sized for the peak.", rich_help_panel=LOAD
        ),
    ] = 1.0,
    headroom: Annotated[
        float,
        typer.Option(
            help="Extra fraction on top of the peak, e.g. 0.2 for 20 %.", rich_help_panel=LOAD
        ),
    ] = 0.0,
    survive_region_loss: Annotated[
        bool,
        typer.Option(
            "--survive-region-loss",
            help="Size each region for its share of the peak after any other region is lost.",
            rich_help_panel=LOAD,
        ),
    ] = False,
    weights: Annotated[
        str | None,
        typer.Option(
            help="Traffic weights per region, e.g. us-east-1=2,eu-west-1=1; default equal.",
            rich_help_panel=FLEET,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of request sizes and arrivals.", rich_help_panel=LOAD)
    ] = 0,
    prices: Annotated[
        Path | None,
        typer.Option(
            help="Price table (YAML) instead of the shipped on-demand one.", rich_help_panel=PLAN
        ),
    ] = None,
    refresh_prices: Annotated[
        bool,
        typer.Option(
            "--refresh-prices",
            help="Ask the AWS Pricing API for today's prices per region.",
            rich_help_panel=PLAN,
        ),
    ] = False,
    profile: Annotated[
        str | None,
        typer.Option(help="AWS profile for --refresh-prices.", rich_help_panel=PLAN),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Directory for plan.json and plan.png.", rich_help_panel=OUTPUT)
    ] = Path("plan-results"),
    json_output: Annotated[
        bool, typer.Option("--json", help="Print plan.json to stdout.", rich_help_panel=OUTPUT)
    ] = False,
) -> None:
    """Size a service's pools per region for a load and an SLO (SIMULATED).

    Per region and pool: replicas, instances, chips, $/hour, $/M output
    tokens and the predicted TTFT P99 at peak; then the min/max for the
    fleet file as a diff. Writes plan.json and plan.png.
    """
    import math

    from inferfleet.cli.bench.config import Distribution, parse_slo

    for flag, value in (("--peak-factor", peak_factor), ("--headroom", headroom)):
        if not math.isfinite(value):
            raise UserError(f"{flag}: {value} is not a number; give e.g. {flag} 1.5")
    if not 1.0 <= peak_factor <= 100.0:
        raise UserError(f"--peak-factor: {peak_factor:g} must be from 1 (no peak) to 100")
    if not 0.0 <= headroom <= 10.0:
        raise UserError(f"--headroom: {headroom:g} must be from 0 to 10 (a fraction: 0.2 is 20 %)")
    if not 0 <= seed < 2**63:
        raise UserError(f"--seed: {seed} must be from 0 to 2**63-1")
    parsed = {}
    for flag, text, parse in (
        ("--slo", slo, parse_slo),
        ("--prompt-tokens", prompt_tokens, Distribution.parse),
        ("--output-tokens", output_tokens, Distribution.parse),
    ):
        try:
            parsed[flag] = parse(text)
        except ValueError as error:
            raise UserError(f"{flag}: {error}") from None
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory; give a directory path")

    from inferfleet.cli import output_folder
    from inferfleet.cli.sizing.fleet_shapes import fleet_service
    from inferfleet.cli.sizing.plan_report import (
        infeasible_message,
        plan_results,
        print_plan,
        write_plot,
        yaml_diff,
    )
    from inferfleet.cli.sizing.planner import Demand, Planner, parse_load
    from inferfleet.cli.sizing.prices import PriceLookup, load_prices

    demand = Demand(
        0.0, parsed["--prompt-tokens"], parsed["--output-tokens"], peak_factor=peak_factor,
        headroom=headroom, survive_region_loss=survive_region_loss, seed=seed,
    )  # fmt: skip
    try:
        rate = parse_load(load, demand.mean_output_tokens)
    except ValueError as error:
        raise UserError(f"--load: {error}") from None
    demand = Demand(
        rate, demand.prompt_tokens, demand.output_tokens, peak_factor=peak_factor,
        headroom=headroom, survive_region_loss=survive_region_loss, seed=seed,
    )  # fmt: skip
    access = None
    if refresh_prices:
        from inferfleet.cli.aws import AwsAccess

        access = AwsAccess(profile=profile)
    lookup = PriceLookup(load_prices(prices), access)
    fleet = fleet_service(
        config, service, context_tokens=demand.context_tokens, price=lookup, weights=weights
    )
    # Claimed before the planning: a folder plan did not write is refused, never overwritten.
    output_folder.claim(out, flag="--out", writer=PLAN_WRITER)
    from rich.console import Console

    console = Console(stderr=True, quiet=json_output)
    planner = Planner(demand, parsed["--slo"], routing=fleet.routing)
    loads = planner.region_loads(fleet.regions)
    sizings = []
    with console.status("planning") as status:
        planner.progress = status.update
        for region in fleet.regions:
            sizings.append(planner.size_region(region, *loads[region.name]))
    results = plan_results(fleet.service, sizings, demand, parsed["--slo"], lookup.describe())
    results["config"] = str(config)
    results["routing"] = str(fleet.routing)
    results["fleet_yaml_diff"] = yaml_diff(
        config, fleet.text, fleet.lines, fleet.service, results["fleet_yaml"]
    )
    _write_plan(out, results, sizings, write_plot)
    if json_output:
        typer.echo(json.dumps(results, indent=2))
    else:
        print_plan(results, out)
    if not results["feasible"]:
        raise UserError(infeasible_message(results), exit_code=1)


def _write_plan(out: Path, results: dict, sizings, write_plot) -> None:  # type: ignore[no-untyped-def]
    """plan.json and plan.png, each written whole."""
    from inferfleet.cli import output_folder
    from inferfleet.cli.user_files import write_file_atomically

    text = json.dumps(results, indent=2) + "\n"
    write_file_atomically(out / "plan.json", lambda path: path.write_text(text), flag="--out")
    write_file_atomically(
        out / "plan.png", lambda path: write_plot(results, sizings, path), flag="--out"
    )
    entries = set(output_folder.written_entries(out)) | {"plan.json", "plan.png"}
    output_folder.record_entries(out, writer=PLAN_WRITER, entries=sorted(entries))


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("plan")(plan)
    profile_app = typer.Typer(
        name="profile",
        help="Server profiles: the timing model the emulator, the simulator and the planner share.",
        no_args_is_help=True,
    )
    profile_app.command("fit")(fit)
    app.add_typer(profile_app, name="profile")
