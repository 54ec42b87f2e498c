"""`contimg` imports a sub-command's module only when needed, yet `--help` lists every command."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline_defs.cli import COMMAND_MODULES, LazyGroup, all_commands, main

REPO = Path(__file__).resolve().parents[3]
MODULES = sorted({module for module, _ in COMMAND_MODULES.values()})


def _registered() -> dict[str, click.Command]:
    commands: dict[str, click.Command] = {}
    for module in MODULES:
        for command in importlib.import_module(f"pipeline_defs.cli.{module}").COMMANDS:
            assert command.name is not None
            commands[command.name] = command
    return commands


def test_the_table_names_every_registered_command_and_its_module() -> None:
    registered = _registered()
    assert set(COMMAND_MODULES) == set(registered)
    for name, (module, _) in COMMAND_MODULES.items():
        assert registered[name] in importlib.import_module(f"pipeline_defs.cli.{module}").COMMANDS


def test_help_lists_what_the_commands_themselves_would_say() -> None:
    lazy = LazyGroup("contimg", lazy=COMMAND_MODULES, help=main.help)
    eager = click.Group("contimg", commands=_registered(), help=main.help)
    for width in (80, 120):
        lazy_help = CliRunner().invoke(lazy, ["--help"], terminal_width=width).output
        eager_help = CliRunner().invoke(eager, ["--help"], terminal_width=width).output
        assert lazy_help == eager_help
    listed = CliRunner().invoke(main, ["--help"]).output.split("Commands:\n", 1)[1]
    assert [line.split()[0] for line in listed.splitlines()] == sorted(_registered())


def test_all_commands_resolves_each_name() -> None:
    assert sorted(c.name or "" for c in all_commands()) == sorted(COMMAND_MODULES)


def _modules_loaded_by(*args: str) -> set[str]:
    code = (
        "import sys\n"
        "from pipeline_defs.cli import main\n"
        f"try:\n    main.main({list(args)!r}, prog_name='contimg')\n"
        "except SystemExit:\n    pass\n"
        "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(result.stderr.split())


# Not SQLAlchemy: the `pipeline_defs` package itself imports resources.settings, which uses it.
HEAVY = {"dagster", "astropy", "numpy", "alembic", "prometheus_client"}


@pytest.mark.parametrize("args", [("--help",), ("fits", "inspect", "--help")])
def test_help_imports_none_of_the_heavy_libraries(args: tuple[str, ...]) -> None:
    assert _modules_loaded_by(*args) & HEAVY == set()


@pytest.mark.parametrize("module", MODULES)
def test_no_command_module_imports_dagster_on_import(module: str) -> None:
    code = f"import sys, pipeline_defs.cli.{module}; print('dagster' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
