"""Every option of every command says what it does (`--help` is the reference), and every
argument is explained in its command's help."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from pipeline_defs.cli import COMMAND_MODULES, main


def _walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    """Every command under `command`, importing each lazy group's module (get_command)."""
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{path} {name}: not loadable"
            yield from _walk(sub, f"{path} {name}")


def test_every_option_and_argument_is_documented() -> None:
    commands = dict(_walk(main, "contimg"))
    assert set(COMMAND_MODULES) <= {p.split()[1] for p in commands if " " in p}
    assert len(commands) > len(COMMAND_MODULES)  # the groups' sub-commands were walked too
    missing: list[str] = []
    for path, command in commands.items():
        ctx = click.Context(command, info_name=path)
        for param in command.get_params(ctx):  # includes --help and --version
            if isinstance(param, click.Option):
                if not (param.help or "").strip():
                    missing.append(f"{path} {'/'.join(param.opts)}: no help")
            elif isinstance(param, click.Argument) and (
                # click arguments take no help text: the command's help must name them.
                param.human_readable_name not in (command.help or "")
            ):
                missing.append(f"{path} {param.human_readable_name}: not in the help")
    assert missing == []


def test_sample_day_options_have_help_in_both_commands() -> None:
    for command in ("demo", "sample-data"):
        text = CliRunner().invoke(main, [command, "--help"]).output
        for option, words in (
            ("--days", "Observation days"),
            ("--per-day", "Images per day"),
            ("--start", "First day"),
        ):
            line = next(line for line in text.splitlines() if line.strip().startswith(option))
            assert words in line or words in text.split(option, 1)[1][:200], (command, option)
    assert "Random seed" in CliRunner().invoke(main, ["sample-data", "--help"]).output


def test_version_option_is_listed() -> None:
    text = CliRunner().invoke(main, ["--help"]).output
    assert "--version" in text and "Print the installed contimg version" in text
