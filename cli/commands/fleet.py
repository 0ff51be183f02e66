"""``init``, ``validate`` and ``synth``: from a fleet description to checked templates."""

import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from inferfleet.cli.errors import UserError

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Fleet description (YAML).", show_default=True)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")]


def init(
    path: Annotated[
        Path, typer.Argument(help="File to write, or a folder to write fleet.yaml into.")
    ] = Path("fleet.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write an example fleet description to start from."""
    from inferfleet.cli.user_files import write_file_atomically

    if path.is_dir():
        path = path / "fleet.yaml"
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the path of the file to write")
    if path.exists() and not path.is_file():
        raise UserError(f"{path} is not a regular file (a device or pipe); give a file path")
    if path.exists() and not force:
        raise UserError(f"{path} already exists; pass --force to overwrite it, or another path")
    example = resources.files("inferfleet.infra").joinpath("example_fleet.yaml").read_text()
    write_file_atomically(path, lambda staging: staging.write_text(example), flag="init")
    typer.echo(f"wrote {path}; next: inferfleet validate --config {path}")


def validate(config: ConfigOption = Path("fleet.yaml"), as_json: JsonOption = False) -> None:
    """Check a fleet description and print its plan.

    Everything `synth` would reject is rejected here, with file, line, field and fix.
    """
    plan = load_plan(config)
    if as_json:
        typer.echo(json.dumps({"config": str(config), "valid": True, **plan.as_dict()}, indent=2))
        return
    from inferfleet.cli.render import print_fleet_plan

    print_fleet_plan(plan, source=str(config))


def synth(
    config: ConfigOption = Path("fleet.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Cloud assembly folder.")] = Path(
        "cdk.out"
    ),
    region: Annotated[
        list[str] | None, typer.Option("--region", "-r", help="Only this region (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Synthesize every region's stack in process, then gate on cfn-lint and cdk-nag."""
    from inferfleet.cli.synth import synthesize

    plan = load_plan(config)
    known = plan.region_names
    for name in region or []:
        if name not in known:
            raise UserError(f"--region {name}: not in {config}; use one of {', '.join(known)}")
    with _status(as_json, f"synthesizing {len(region or known)} stack(s)"):
        report = synthesize(plan, config_dir=config.parent, outdir=out, regions=region)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        from inferfleet.cli.render import print_synth_report

        print_synth_report(report)
    if not report.passed:
        raise typer.Exit(1)


def _status(quiet: bool, message: str):
    from contextlib import nullcontext

    from inferfleet.cli.render import stderr_console

    return nullcontext() if quiet else stderr_console.status(message)


def load_plan(config: Path, *, emulator: bool = False):  # -> FleetPlan; lazy for a fast --help
    """The fleet plan of ``config``; a bad file is a UserError listing every problem."""
    from inferfleet.infra.plan import load_fleet_plan
    from inferfleet.infra.spec import FleetSpecError

    try:
        return load_fleet_plan(config, emulator=emulator)
    except FleetSpecError as error:
        raise UserError(str(error)) from None


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(validate)
    app.command()(synth)
