"""``local up|down|status``: a rehearsal fleet of emulated servers behind nginx on 127.0.0.1."""

import json
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from inferfleet.cli.errors import UserError

STATE_DIR_ENV = "INFERFLEET_LOCAL_STATE_DIR"

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar=STATE_DIR_ENV,
        help="Where the running fleet is recorded; default: ~/.cache/inferfleet/local.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")]


def up(
    servers: Annotated[int, typer.Option("--servers", "-n", help="Emulated servers.")] = 5,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="Batching: continuous or static; default: the profile's (continuous).",
            show_default=False,
        ),
    ] = None,
    routing: Annotated[
        str,
        typer.Option(
            "--routing", help="nginx policy: least_outstanding_requests, random, round_robin."
        ),
    ] = "least_outstanding_requests",
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help="nginx port on 127.0.0.1; default: a free one.", show_default=False
        ),
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(
            "--server-profile",
            help="JSON file of a server profile (slots, decode_base_s, ...), e.g. from "
            "`inferfleet profile fit`.",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="http, or grpc: the servers also speak Triton's gRPC streaming "
            "(ModelStreamInfer), behind an nginx grpc_pass front with the same routing.",
        ),
    ] = "http",
    regions: Annotated[
        int,
        typer.Option(
            "--regions",
            help="Regions to rehearse (--servers each) behind a weighted global front, with "
            "the traffic controller; 1 is a single fleet.",
        ),
    ] = 1,
    period: Annotated[
        float | None,
        typer.Option(
            "--period",
            help="--regions: traffic-control period, seconds (default 2).",
            show_default=False,
        ),
    ] = None,
    objective: Annotated[
        float | None,
        typer.Option(
            "--objective",
            help="--regions: TTFT P99 objective, seconds (default 0.15).",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start emulated inference servers behind a real nginx, left running in the background."""
    from inferfleet.cli.local import state as local_state
    from inferfleet.cli.local.config import build_config
    from inferfleet.cli.sizing.profile import Batching, ServerProfile, read_profile

    server_profile = read_profile(profile, flag="--server-profile") if profile else ServerProfile()
    if mode is not None:
        if mode not in get_args(Batching):
            raise UserError(f"--mode: Input should be 'continuous' or 'static' (got {mode!r})")
        server_profile = server_profile.model_copy(update={"batching": mode})
    if regions != 1:
        if protocol != "http":
            raise UserError("--protocol: --regions rehearses HTTP fronts only; drop one of them")
        _up_regions(regions, servers, server_profile, period, objective, state_dir, as_json)
        return
    config = build_config(
        flag_style=True,
        servers=servers,
        routing=routing,
        port=port,
        profile=server_profile,
        protocol=protocol,
    )
    where = local_state.StateDir(state_dir or local_state.default_state_dir())
    with _progress(as_json, f"starting {servers} emulated servers and nginx"):
        started = local_state.start_background(config, where)
    report = local_state.describe(started, where)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    grpc = (
        f"\ngRPC front: {report['grpc_url']}  (inferfleet bench --api triton-grpc --target "
        f"{report['grpc_url']})"
        if report.get("grpc_url")
        else ""
    )
    typer.echo(
        f"local fleet up (emulated): {report['url']}  {servers} {config.mode}-batching servers, "
        f"routing {routing}{grpc}\nstop it with: inferfleet local down"
    )


def _up_regions(
    regions: int,
    servers: int,
    server_profile: Any,
    period: float | None,
    objective: float | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    from inferfleet.cli.local import regions as local_regions
    from inferfleet.cli.local import state as local_state
    from inferfleet.constructs.traffic_controller.weights import WeightPolicy

    if not 2 <= regions <= 8:
        raise UserError(f"--regions: {regions} is not 2..8 (1 starts a single fleet)")
    fields: dict[str, Any] = {
        "regions": local_regions.local_region_names(regions),
        "servers": servers,
        "profile": server_profile,
        "policy": WeightPolicy(objective_s=objective or local_regions.LOCAL_OBJECTIVE_S),
    }
    if period is not None:
        fields["period_s"] = period
    config = local_regions.build_regions_config(**fields)
    root = state_dir or local_state.default_state_dir()
    with _progress(as_json, f"starting {regions} regions x {servers} emulated servers"):
        started = local_regions.start_background(config, root)
    report = local_regions.describe_background(started)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"local regions up (emulated): {report['url']}  {regions} regions x {servers} servers, "
        f"traffic controller every {config.period_s:g} s\nstop it with: inferfleet local down"
    )


def status(state_dir: StateDirOption = None, as_json: JsonOption = False) -> None:
    """Show the background fleet: URL, routing, and each instance's active/queued/served."""
    from inferfleet.cli.local import regions as local_regions
    from inferfleet.cli.local import state as local_state

    root = state_dir or local_state.default_state_dir()
    rehearsal = local_regions.running_background(root)
    if rehearsal is not None:
        report = local_regions.describe_background(rehearsal)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print_regions(report)
        return
    where = local_state.StateDir(root)
    running = local_state.running_state(where)
    if running is None:
        if as_json:
            typer.echo(json.dumps({"running": False, "state_dir": str(where.root)}))
        else:
            typer.echo(f"no local fleet running (state dir {where.root})")
        raise typer.Exit(1)
    report = local_state.describe(running, where)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_status(report)


def down(state_dir: StateDirOption = None) -> None:
    """Stop the background fleet (nginx and emulators) and remove its files."""
    from inferfleet.cli.local import regions as local_regions
    from inferfleet.cli.local import state as local_state

    root = state_dir or local_state.default_state_dir()
    rehearsal = local_regions.stop_background(root)
    if rehearsal is not None:
        typer.echo(f"stopped local regions at {rehearsal.info.url}")
    where = local_state.StateDir(root)
    stopped = local_state.stop_background(where)
    if rehearsal is not None and stopped is None:
        return
    if stopped is None:
        typer.echo(f"no local fleet recorded in {where.root}; nothing to stop")
    else:
        typer.echo(f"stopped local fleet at {stopped.host.url}")


def _progress(quiet: bool, message: str) -> Any:
    from contextlib import nullcontext

    from rich.console import Console

    return nullcontext() if quiet else Console(stderr=True).status(message)


def _print_status(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"local fleet [bold]{report['url']}[/bold] (emulated): {report['servers']} "
        f"{report['mode']}-batching servers, routing {report['routing']}, "
        f"since {report['started_at']}"
    )
    table = Table("instance", "url", "active", "queued", "served")
    for instance in report["instances"]:
        table.add_row(
            instance["instance"],
            instance["url"],
            *(
                str(instance.get(key, instance.get("error", "?")))
                for key in ("active", "queued", "served")
            ),
        )
    console.print(table)


def _print_regions(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"local regions [bold]{report['url']}[/bold] (emulated), traffic controller "
        f"{'on' if report.get('controller') else 'off'} every {report.get('period_s')} s, "
        f"since {report['started_at']}"
    )
    table = Table("region", "url", "weight", "status", "servers alive")
    for region in report.get("regions", []):
        table.add_row(
            region["name"],
            region["url"],
            str(region["weight"]),
            str(region["status"] or "-"),
            f"{region['alive']}/{region['servers']}",
        )
    console.print(table)
    if "error" in report:
        console.print(f"[yellow]{report['error']}[/]")


def register(app: typer.Typer) -> None:
    local_app = typer.Typer(
        name="local",
        help="Rehearse locally: emulated inference servers behind a real nginx on 127.0.0.1.",
        no_args_is_help=True,
    )
    local_app.command("up")(up)
    local_app.command("status")(status)
    local_app.command("down")(down)
    app.add_typer(local_app, name="local")
