"""Entry point of the ``inferfleet`` command.

Command modules import only typer and the standard library at module level, so
``inferfleet --help`` stays fast; aws_cdk, boto3, numpy and matplotlib are
imported inside the commands that need them.
"""

import signal
import sys
import threading

import typer

from inferfleet.cli.commands import (
    batch,
    bench,
    deploy,
    finetune,
    fleet,
    local,
    sizing,
    traffic,
)
from inferfleet.cli.errors import UserError

app = typer.Typer(
    name="inferfleet",
    help=(
        "Describe, synthesize, deploy and benchmark LLM inference fleets "
        "on Inferentia2 and Trainium."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (fleet, bench, local, deploy, finetune, sizing, traffic, batch):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; usage errors exit 2 (click), UserError exits with its own code.

    SIGTERM (``timeout``, a cancelled CI job, ``kill``) stops a command as Ctrl-C does, so it
    keeps what it measured and stops the servers and processes it started.
    """
    # Signal handlers belong to the main thread; a CLI run from another thread keeps Python's.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        app(args=argv)
    except UserError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(error.exit_code)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
