"""The one error convention, table printer and date type of the `contimg` CLI."""

from __future__ import annotations

import datetime as dt

import click
import pytest
from click.testing import CliRunner

from pipeline_defs.cli import main
from pipeline_defs.cli.output import (
    DATE,
    CommandFailed,
    OneLineCommand,
    fail,
    format_table,
    handle_errors,
)
from resources.errors import ContimgError


def test_table_pads_to_the_widest_cell_and_cuts_trailing_blanks() -> None:
    lines = format_table(("ID", "PATH"), [("1", "/a"), ("1234", "/longer/path")])
    assert lines == ["ID    PATH", "1     /a", "1234  /longer/path"]
    assert format_table(("A", "B"), [("x", "")])[1] == "x"  # no padding after the last cell


def test_table_right_alignment_minimum_widths_and_separator() -> None:
    lines = format_table(
        ("day", "images"), [("2025-10-01", "7")], align="<>", min_widths=(12, 7), sep=""
    )
    assert lines == [f"{'day':<12}{'images':>7}", f"{'2025-10-01':<12}{'7':>7}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2025-10-05", dt.date(2025, 10, 5)), (" 2025-10-05 ", dt.date(2025, 10, 5))],
)
def test_date_accepts_iso_days(text: str, expected: dt.date) -> None:
    assert DATE.convert(text, None, None) == expected


def test_date_today_and_yesterday_are_utc() -> None:
    today = dt.datetime.now(dt.UTC).date()
    assert DATE.convert("today", None, None) == today
    assert DATE.convert("Yesterday", None, None) == today - dt.timedelta(days=1)


@pytest.mark.parametrize("text", ["05/10/2025", "2025-10-5", "2025-13-01", "soon"])
def test_date_refuses_anything_else(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a date; use YYYY-MM-DD"):
        DATE.convert(text, None, None)


def _command(problem: Exception) -> click.Command:
    @click.command(cls=OneLineCommand)
    @click.option("--day", type=DATE)
    @handle_errors(ContimgError, OSError)
    def command(day: dt.date | None) -> None:
        raise problem

    return command


def test_a_contimg_error_is_one_masked_line_exit_1() -> None:
    problem = ContimgError("cannot reach postgresql://u:hunter2@h/x\nsecond line", hint="Retry.")
    result = CliRunner().invoke(_command(problem), [])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: cannot reach ")
    assert "hunter2" not in result.stderr and "second line. Retry." in result.stderr


def test_an_error_not_listed_is_not_swallowed() -> None:
    result = CliRunner().invoke(_command(KeyError("bug")), [])
    assert isinstance(result.exception, KeyError)  # a bug stays visible to the tests


def test_a_bad_option_value_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(_command(OSError("unused")), ["--day", "tomorrow"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Invalid value for '--day': 'tomorrow' is not a date")
    assert result.stderr.count("\n") == 1 and "Usage:" not in result.stderr


def test_fail_carries_its_status() -> None:
    with pytest.raises(CommandFailed) as caught:
        fail("no such image", exit_code=3)
    assert caught.value.exit_code == 3 and caught.value.message == "no such image"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["db", "history", "--db", "nope"], "Invalid value for '--db'"),
        (["fits", "inspect", "--workers", "0"], "Invalid value for '--workers'"),
        (["health", "--bogus"], "No such option"),
        (["nope"], "No such command 'nope'"),
        (["sample-data", "--start", "1/2/2025"], "is not a date"),
    ],
)
def test_every_command_reports_usage_errors_the_same_way(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(main, args, prog_name="contimg")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "--help`)" in lines[0]  # still says where the help is


def test_a_group_without_sub_command_still_prints_its_help() -> None:
    result = CliRunner().invoke(main, ["images"], prog_name="contimg")
    assert result.exit_code == 2
    assert "Usage: contimg images" in result.output and "list " in result.output
    assert "error:" not in result.output
