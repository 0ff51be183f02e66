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
    if not local:
        raise UserError(
            "simulate: give --local to simulate the local rehearsal's fleet "
            "(the same flags as `inferfleet bench --local`)"
        )
    from inferfleet.cli.sizing.local_run import DEFAULT_ROUTING, LOCAL_NETWORK_S

    config = _bench_config(
        local=True, servers=servers, users=users, rate=rate, duration=duration, warmup=warmup,
        prompt_tokens=prompt_tokens, output_tokens=output_tokens, dataset=dataset, seed=seed,
        endpoint=endpoint, compare=compare, repeat=repeat, out=out,
        price_per_hour=price_per_hour, instances=instances,
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
    from inferfleet.cli.sizing.profile import Batching, write_profile

    if batching not in get_args(Batching):
        raise UserError(f"--batching: use continuous or static (got {batching!r})")
    network_s = _network(network_ms)
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


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    profile_app = typer.Typer(
        name="profile",
        help="Server profiles: the timing model the emulator, the simulator and the planner share.",
        no_args_is_help=True,
    )
    profile_app.command("fit")(fit)
    app.add_typer(profile_app, name="profile")
