"""``traffic status|drain|undrain|pin``: the multi-region traffic controller of a deployed fleet.

Overrides are written to the fleet's SSM parameter, where the controller reads them at its
next period; they win over its own decision until they expire.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from inferfleet.cli.commands.fleet import JsonOption
from inferfleet.cli.errors import UserError

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="Fleet file the fleet was deployed from."),
]
HomeRegionOption = Annotated[
    str | None,
    typer.Option(
        "--region",
        help="Region of the fleet's global stack (default: the traffic section's home region).",
        show_default=False,
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send the AWS calls to this endpoint, e.g. a local moto.",
        show_default=False,
    ),
]
ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="AWS profile (default: the standard chain).")
]
RegionArgument = Annotated[str, typer.Argument(help="A region of the fleet.")]
ForOption = Annotated[
    str, typer.Option("--for", help="How long the override holds: 30m, 2h, 1d (1m..7d).")
]
ServiceOption = Annotated[
    list[str] | None,
    typer.Option("--service", help="Only this service (repeatable; default: every service)."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the decision log.")]

traffic_app = typer.Typer(
    help="Weights between the regions of a deployed fleet: status, drain, undrain, pin.",
    no_args_is_help=True,
)


def _target(config: Path, region: str | None, endpoint_url: str | None, profile: str | None) -> Any:
    from inferfleet.cli.aws import AwsAccess
    from inferfleet.cli.commands.fleet import load_plan
    from inferfleet.cli.traffic.store import TrafficTarget

    if not config.exists():
        raise UserError(f"--config {config}: no such file; pass the fleet file of the fleet")
    plan = load_plan(config)
    glob = plan.global_plan
    if glob is None:
        raise UserError(
            f"--config {config}: fleet {plan.name} has no traffic section, so no traffic "
            "controller to read or steer; add one (README: Move traffic between regions) and "
            "deploy every region"
        )
    regions = plan.region_names
    if region is not None and region not in regions:
        raise UserError(f"--region: {region} is not a region of fleet {plan.name}")
    override_parameter, state_parameter = glob.props.parameters
    return TrafficTarget(
        fleet=plan.name,
        regions=regions,
        services=tuple(service.name for service in glob.props.services),
        home_region=region or glob.region,
        aws=AwsAccess(profile=profile, endpoint_url=endpoint_url),
        override_parameter=override_parameter,
        state_parameter=state_parameter,
    )


@traffic_app.command()
def status(
    config: ConfigOption = Path("fleet.yaml"),
    region: HomeRegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Weights, status, reasons and inputs of the last decision, and overrides, per region."""
    from inferfleet.cli.traffic.report import status_report

    target = _target(config, region, endpoint_url, profile)
    report = status_report(
        target.fleet,
        target.regions,
        target.services,
        target.state(),
        target.overrides(),
        time.time(),
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_status(report)


def _changed(
    verb: str, region: str, entry: dict[str, Any] | None, target: Any, as_json: bool
) -> None:
    from inferfleet.cli.traffic.report import iso

    payload = {
        "fleet": target.fleet,
        "region": region,
        "action": verb,
        "override": None if entry is None else {**entry, "expires_at": iso(entry["expires_at"])},
        "parameter": target.override_parameter,
    }
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    if entry is None:
        typer.echo(f"{region}: no override was in force; the controller decides its weight")
        return
    services = ", ".join(entry["services"]) if entry.get("services") else "every service"
    what = "drained" if entry["action"] == "drain" else f"pinned to {entry['weight']}"
    if verb == "undrain":
        typer.echo(f"{region}: override removed ({what} for {services}); back to the controller")
    else:
        typer.echo(
            f"{region}: {what} for {services} until {payload['override']['expires_at']}; the "
            "controller applies it at its next period"
        )


@traffic_app.command()
def drain(
    region: RegionArgument,
    for_: ForOption = "30m",
    service: ServiceOption = None,
    reason: ReasonOption = "",
    config: ConfigOption = Path("fleet.yaml"),
    home: HomeRegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send no new traffic to REGION until the override expires (open streams finish there)."""
    _set_override("drain", region, None, for_, service, reason, config, home, endpoint_url, profile,
              as_json)  # fmt: skip


@traffic_app.command()
def undrain(
    region: RegionArgument,
    config: ConfigOption = Path("fleet.yaml"),
    home: HomeRegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove REGION's drain or pin; the controller ramps it back by its step."""
    from inferfleet.cli.traffic.store import remove_override

    target = _target(config, home, endpoint_url, profile)
    removed = remove_override(target, region, time.time())
    _changed("undrain", region, removed, target, as_json)


@traffic_app.command()
def pin(
    region: RegionArgument,
    weight: Annotated[int, typer.Argument(help="Weight of 100 REGION gets.")],
    for_: ForOption = "30m",
    service: ServiceOption = None,
    reason: ReasonOption = "",
    config: ConfigOption = Path("fleet.yaml"),
    home: HomeRegionOption = None,
    endpoint_url: EndpointOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hold REGION at WEIGHT (of 100) until the override expires; the rest share the remainder."""
    _set_override("pin", region, weight, for_, service, reason, config, home, endpoint_url, profile,
              as_json)  # fmt: skip


def _set_override(
    action: str,
    region: str,
    weight: int | None,
    for_: str,
    service: list[str] | None,
    reason: str,
    config: Path,
    home: str | None,
    endpoint_url: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    from inferfleet.cli.traffic.store import change_override, parse_for

    seconds = parse_for(for_)
    target = _target(config, home, endpoint_url, profile)
    done = "drained" if action == "drain" else "pinned"
    entry = change_override(
        target,
        region,
        action=action,
        seconds=seconds,
        now=time.time(),
        weight=weight,
        services=service,
        reason=reason or f"{done} by {os.environ.get('USER', 'an operator')}",
    )
    _changed(action, region, entry, target, as_json)


def _print_status(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not report["controller_ran"]:
        console.print(
            f"fleet {report['fleet']}: the traffic controller has not decided yet (no state "
            "parameter); overrides below are what it will read"
        )
    else:
        console.print(f"fleet {report['fleet']}: last decision at {report['decided_at']}")
    for service, entry in report["services"].items():
        utilization = entry["fleet_utilization"]
        title = f"{service}" + (
            f" (fleet capacity utilization {utilization:.0%})" if utilization is not None else ""
        )
        table = Table("region", "weight", "status", "TTFT P99 s", "healthy", "override", "reason",
                      title=title)  # fmt: skip
        for region, row in entry["regions"].items():
            table.add_row(
                region,
                "-" if row["weight"] is None else str(row["weight"]),
                row["status"] or "-",
                _ttft(row["inputs"]),
                _healthy(row["inputs"]),
                _override(row["override"]),
                row["reason"] or "",
            )
        console.print(table)


def _ttft(inputs: dict[str, Any]) -> str:
    value = inputs.get("ttft_p99_s")
    return "-" if value is None else f"{value:.3f}"


def _healthy(inputs: dict[str, Any]) -> str:
    healthy, desired = inputs.get("healthy_hosts"), inputs.get("desired_hosts")
    if healthy is None:
        return "-"
    return f"{healthy:g}/{desired:g}" if desired else f"{healthy:g}"


def _override(override: dict[str, Any] | None) -> str:
    if override is None:
        return "-"
    what = "drain" if override["action"] == "drain" else f"pin {override['weight']}"
    return f"{what} until {override['expires_at']}"


def register(app: typer.Typer) -> None:
    app.add_typer(traffic_app, name="traffic")
