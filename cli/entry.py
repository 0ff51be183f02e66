"""The ``inferfleet`` console script: says which extra to install when the CLI's own
dependencies are missing (the base package carries only what the constructs need)."""

import sys


def main() -> None:
    try:
        import typer  # noqa: F401
    except ImportError:
        print(
            "error: the inferfleet command needs the CLI's dependencies, which the base "
            "package (the constructs) leaves out; install them with "
            "pip install 'inferfleet[cli]'",
            file=sys.stderr,
        )
        sys.exit(1)
    from inferfleet.cli.main import main as run

    run()
