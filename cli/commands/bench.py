"""``inferfleet bench``: benchmark a streaming LLM (or classifier) endpoint honestly.

The command's flags are generated from the bench config model
(:mod:`inferfleet.cli.bench.options`), which needs pydantic; it is built only when
``bench`` runs, so ``inferfleet --help`` and the other commands start without it.
"""

from __future__ import annotations

import typer

SHORT_HELP = "Measure TTFT, inter-token latency, E2E and tokens/min of an endpoint, per load step."


def bench(context: typer.Context) -> None:
    from inferfleet.cli.bench.options import build_command, build_trace_command

    if context.args[:1] == ["trace"]:
        # `bench trace make`: its own flags; the bench run's flags start with dashes.
        build_trace_command()(args=context.args, prog_name=context.command_path)
        return
    app = build_command()
    app(args=context.args, prog_name=context.command_path)


def register(app: typer.Typer) -> None:
    app.command(
        "bench",
        help=SHORT_HELP,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(bench)
