"""The command table of inferfleet.cli.main against what the command modules register."""

import typer.core
import typer.main

from inferfleet.cli.main import COMMANDS, build_app


def _commands(argv: list[str]) -> list[str]:
    group = typer.main.get_command(build_app(argv))
    assert isinstance(group, typer.core.TyperGroup)
    return list(group.commands)


def test_each_command_loads_the_module_that_registers_it_and_no_other() -> None:
    for name, module in COMMANDS.items():
        assert set(_commands([name])) == {n for n, m in COMMANDS.items() if m == module}, name


def test_help_and_unknown_names_load_every_command() -> None:
    for argv in ([], ["--help"], ["nosuch"]):
        assert sorted(_commands(argv)) == sorted(COMMANDS)
