"""Entry point of the ``inferfleet`` command.

Command modules import only typer and the standard library at module level, and a run
imports only the module of the command it runs (``COMMANDS``), so ``inferfleet --help``
and each command start fast; aws_cdk, boto3, numpy and matplotlib are imported inside the
commands that need them.
"""

import signal
import sys
import threading
from importlib import import_module

import typer

from inferfleet.cli.errors import UserError

HELP = (
    "Describe, synthesize, deploy and benchmark LLM inference fleets on Inferentia2 and Trainium."
)
# Each top-level command (or group) and the module of inferfleet.cli.commands that
# registers it, in the order `inferfleet --help` lists them.
COMMANDS = {
    "init": "fleet",
    "validate": "fleet",
    "synth": "fleet",
    "bench": "bench",
    "local": "local",
    "bootstrap": "deploy",
    "deploy": "deploy",
    "status": "deploy",
    "destroy": "deploy",
    "finetune": "finetune",
    "invoke": "finetune",
    "simulate": "sizing",
    "plan": "sizing",
    "profile": "sizing",
    "traffic": "traffic",
    "batch": "batch",
}


def build_app(argv: list[str]) -> typer.Typer:
    """The CLI for ``argv``: only the module of the command it names, or every module for
    ``inferfleet --help``, no command, or an unknown one (click then lists them all).

    A module whose commands run from scripts and CI sets ``RICH_MARKUP_MODE = None``: typer
    takes the markup mode from the root app, and plain help leaves rich's import out.
    """
    name = argv[0] if argv else None
    if name in COMMANDS:
        modules = [import_module(f"inferfleet.cli.commands.{COMMANDS[name]}")]
        markup = getattr(modules[0], "RICH_MARKUP_MODE", "rich")
    else:
        names = dict.fromkeys(COMMANDS.values())
        modules = [import_module(f"inferfleet.cli.commands.{module}") for module in names]
        markup = "rich"
    app = typer.Typer(
        name="inferfleet",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=markup,
    )
    # With a callback the root is always a group, as with every module registered: typer
    # would otherwise make an app of one command (bench) that command itself.
    app.callback()(_root)
    for module in modules:
        module.register(app)
    return app


def _root() -> None:
    pass


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; usage errors exit 2 (click), UserError exits with its own code.

    SIGTERM (``timeout``, a cancelled CI job, ``kill``) stops a command as Ctrl-C does, so it
    keeps what it measured and stops the servers and processes it started.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    # Signal handlers belong to the main thread; a CLI run from another thread keeps Python's.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        build_app(args)(args=args)
    except UserError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(error.exit_code)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
