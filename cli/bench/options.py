"""The ``inferfleet bench`` flags, generated from :class:`BenchConfig`'s fields.

Each field's default, help text and panel live on the field (see
:func:`~inferfleet.cli.bench.config.option`); this module turns them into typer
options, so a new setting is one field. Flags are the field names with dashes;
text that a validator parses (``--users 4,20``, ``--output-tokens lognormal:128:0.6``)
is typed as a string here and validated, with the flag named, by the model.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from inferfleet.cli.bench.config import OUTPUT, BenchConfig, describe_validation_error
from inferfleet.cli.errors import UserError

CLI_TYPES: dict[str, type] = {"str": str}
EXIT_CODES = (
    "Exit codes: 0 every step valid; 1 the run could not be carried out (target unreachable, "
    "an AWS call failed); 2 bad input; 3 a step failed (more requests failed than "
    "--max-error-rate allows, or none succeeded); 4 a step's figures are invalid (the client "
    "was the bottleneck, or it hit bench's memory bound); 130 interrupted (what was measured "
    "is saved)."
)
HELP = (
    "Measure TTFT, inter-token latency, E2E and tokens/min of an endpoint, per load step."
    "\n\nClosed loop (--users) or open-loop Poisson (--rate); steps where the client was the "
    "bottleneck are marked invalid. Writes results.json (with results.schema.json), "
    "requests.csv, report.md, report.html and PNG plots to --out. --scale resizes the target "
    "between steps; --compare switches its routing. Ctrl-C keeps what was measured."
    f"\n\n{EXIT_CODES}"
)


# Flags ``--config --service`` may fill in from the fleet (a classifier's or a gRPC service's
# --api): unset stays None on the command line, so the fleet's choice can stand in, and
# BenchConfig's default applies when neither says.
FROM_THE_FLEET = frozenset({"api"})


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    default = field.get_default(call_default_factory=True)
    shown: bool | str = True
    if name in FROM_THE_FLEET:
        default, shown = None, str(default)
    annotation: Any = field.annotation
    if "cli_type" in extra:
        annotation = CLI_TYPES[str(extra["cli_type"])] | None
        default = None if default in ([], ()) else str(default)
    elif typing_origin_is_literal(annotation):
        annotation = str
    flags = (f"--{name.replace('_', '-')}",)
    option = typer.Option(
        *flags, help=field.description, rich_help_panel=str(extra["panel"]), show_default=shown
    )
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=default,
        annotation=Annotated[annotation, option],
    )


def typing_origin_is_literal(annotation: object) -> bool:
    from typing import Literal, get_origin

    return get_origin(annotation) is Literal


def _parameters(model: type[BaseModel]) -> list[inspect.Parameter]:
    return [
        _parameter(name, field)
        for name, field in model.model_fields.items()
        if isinstance(field.json_schema_extra, dict) and "panel" in field.json_schema_extra
    ]


TRACE_HELP = (
    "Write a seeded synthetic trace for `inferfleet bench --trace`: conversations arrive "
    "with a daily swing and bursts, some carry several turns (session_id) and some share a "
    "system prompt (prefix_id). The same flags and --seed write the same file."
)


def build_trace_command() -> typer.Typer:
    """``inferfleet bench trace make``: flags from :class:`TraceMakeConfig`'s fields."""
    from inferfleet.cli.bench.trace import TraceMakeConfig, write_trace

    def make(**values: Any) -> None:
        from pydantic import ValidationError

        try:
            config = TraceMakeConfig.model_validate(
                {name: value for name, value in values.items() if value is not None}
            )
        except ValidationError as error:
            raise UserError(describe_validation_error(error)) from None
        written = write_trace(config)
        typer.secho(f"{written:,} requests written to {config.out}", err=True)

    make.__signature__ = inspect.Signature(_parameters(TraceMakeConfig))  # type: ignore[attr-defined]
    make.__doc__ = TRACE_HELP
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    trace = typer.Typer(help="Synthetic traces for --trace.")
    trace.command("make")(make)
    app.add_typer(trace, name="trace")
    return app


def build_command() -> typer.Typer:
    """A typer app whose one command takes every BenchConfig field as a flag, plus --json."""

    def bench(**values: Any) -> None:
        from pydantic import ValidationError

        from inferfleet.cli.bench.fleet_target import resolve_fleet_target

        json_output = values.pop("json_output")
        given = resolve_fleet_target(
            {name: value for name, value in values.items() if value is not None}
        )
        try:
            config = BenchConfig.model_validate(given)
        except ValidationError as error:
            raise UserError(describe_validation_error(error)) from None
        run(config, json_output=json_output)

    parameters = _parameters(BenchConfig)
    parameters.append(
        inspect.Parameter(
            "json_output", inspect.Parameter.KEYWORD_ONLY, default=False,
            annotation=Annotated[bool, typer.Option("--json", help="Print results.json to "
                                                    "stdout.", rich_help_panel=OUTPUT)],
        )
    )  # fmt: skip
    bench.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    bench.__doc__ = HELP
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("bench")(bench)
    return app


def run(config: BenchConfig, *, json_output: bool) -> None:
    if config.scenario is not None:
        from inferfleet.cli.bench.scenario import build_scenario, run_scenario

        plan = build_scenario(
            config, regions=config.regions, scenario=config.scenario,
            period_s=config.control_period,
        )  # fmt: skip
        outcome = run_scenario(plan)
    else:
        from inferfleet.cli.bench.runner import run_bench

        outcome = run_bench(config)
    if json_output:
        typer.echo(outcome.results.model_dump_json(indent=2))
    else:
        steps = outcome.results.steps
        invalid = sum(1 for step in steps if not step.valid)
        requests = sum(step.requests for step in steps)
        failed = sum(step.errors for step in steps)
        typer.secho(
            f"{len(steps)} step(s) measured, {invalid} invalid; {failed:,} of {requests:,} "
            f"requests failed; results in {config.out}/"
            + (" (partial)" if outcome.results.partial else ""),
            err=True,
            fg=typer.colors.RED if outcome.exit_code else None,
        )
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)
