"""How every `contimg` command reports errors, prints tables and reads dates.

One convention, so a person (or a script) meets the same shape everywhere:

* a failure is ONE line `error: ...` on stderr, with passwords masked, never a traceback;
* a usage problem (bad option value, unknown option, conflicting flags) exits 2
  (`USAGE_STATUS`), a failure (not found, unreachable, unhealthy, a file that does not parse)
  exits 1 (`FAILURE_STATUS`), as docs/catalogue.md and docs/ops/*.md document;
* tables are plain text, columns separated by two spaces, padded to the widest cell;
* a date option is a UTC day, `YYYY-MM-DD` (or `today` / `yesterday`).

This module is imported by every command module, including when only `--help` is asked for, so it
imports nothing heavier than click at import time (masking needs SQLAlchemy: imported on use).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from click.exceptions import NoArgsIsHelpError

from resources.errors import ContimgError
from resources.settings import SAMPLE_FIRST_DAY

F = TypeVar("F", bound=Callable[..., Any])

FAILURE_STATUS = 1
USAGE_STATUS = 2


# --- errors -------------------------------------------------------------------------------------


def one_line(text: str) -> str:
    """`text` masked and folded onto one line: an error line must never leak nor wrap a secret."""
    from resources.secrets import mask_text  # SQLAlchemy's URL parser: only when failing

    return " ".join(mask_text(text).split())


def echo_error(message: str) -> None:
    """Print `error: message` on stderr without exiting (a loop over databases goes on)."""
    click.echo(f"error: {message}", err=True)


class CommandFailed(click.ClickException):
    """A failure: one `error: ...` line on stderr, exit status 1 unless told otherwise."""

    def __init__(self, message: str, exit_code: int = FAILURE_STATUS) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        echo_error(self.message)


class OneLineUsageError(click.UsageError):
    """Bad input: one `error: ...` line on stderr, exit status 2, no usage block."""

    exit_code = USAGE_STATUS

    def show(self, file: Any = None) -> None:
        echo_error(self.format_message())


def failure(problem: BaseException | str, exit_code: int = FAILURE_STATUS) -> CommandFailed:
    """The CommandFailed for an exception (masked, one line; its class name if it says nothing)."""
    if isinstance(problem, str):
        return CommandFailed(" ".join(problem.split()), exit_code)
    return CommandFailed(one_line(str(problem)) or type(problem).__name__, exit_code)


def fail(problem: BaseException | str, exit_code: int = FAILURE_STATUS) -> NoReturn:
    """Stop the command with one error line and `exit_code` (1: not found, unreachable...)."""
    raise failure(problem, exit_code) from None


def exit_with(status: int) -> NoReturn:
    """End the command with `status` after its output is printed (e.g. 1: some file failed)."""
    raise click.exceptions.Exit(status)


def handle_errors(*errors: type[BaseException]) -> Callable[[F], F]:
    """Turn the given exceptions (default: ContimgError) raised by a command into one line, exit 1.

    A command lists what can really occur (docs/exceptions.md: narrowest class), and this is the
    only place that decides how such an error is shown.
    """
    caught = errors or (ContimgError,)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except click.ClickException:
                raise
            except caught as exc:
                raise failure(exc) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


def check_settings() -> None:
    """Validate every setting (resources.settings.validate_all); a bad one ends the command.

    One line naming the variable, exit status 2 (`USAGE_STATUS`: the invocation's environment
    is wrong, as a bad option would be), before the command opens or creates anything.
    """
    from resources.errors import ConfigurationError
    from resources.settings import validate_all

    try:
        validate_all()
    except ConfigurationError as exc:
        fail(exc, USAGE_STATUS)


def settings_checked(command: click.Command) -> click.Command:
    """`command` (each leaf command of a group) runs `check_settings()` before its callback.

    Wrapped after parsing, not in the group: `--help` of a command still works with a broken
    environment. Idempotent, so a command fetched twice is wrapped once.
    """
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            settings_checked(sub)
        return command
    callback = command.callback
    if callback is None or getattr(callback, "__contimg_settings_checked__", False):
        return command

    @functools.wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        check_settings()
        return callback(*args, **kwargs)

    checked.__contimg_settings_checked__ = True  # type: ignore[attr-defined]
    command.callback = checked
    return command


def one_line_usage(exc: click.UsageError) -> OneLineUsageError:
    """A click usage error as one line that still says where the help is."""
    message = exc.format_message().replace("\n", " ").strip()
    if exc.ctx is not None and "--help" not in message:
        message += f" (see `{exc.ctx.command_path} --help`)"
    return OneLineUsageError(message)


def _passes_through(exc: click.UsageError) -> bool:
    # `contimg images` with no sub-command prints the group's help (exit 2): keep that as it is.
    return isinstance(exc, OneLineUsageError | NoArgsIsHelpError)


@contextmanager
def usage_in_one_line() -> Iterator[None]:
    """Turn a click usage error raised inside into our one-line form (exit 2)."""
    try:
        yield
    except click.UsageError as exc:
        if _passes_through(exc):
            raise
        raise one_line_usage(exc) from None


class OneLineCommand(click.Command):
    """A command whose parse and validation errors are one line (exit 2)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with usage_in_one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with usage_in_one_line():
            return super().invoke(ctx)


class OneLineGroup(click.Group):
    """A group whose own and sub-commands' usage errors are one line (exit 2)."""

    command_class = OneLineCommand

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with usage_in_one_line():
            return super().make_context(*args, **kwargs)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        with usage_in_one_line():
            return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        # Sub-commands parse their arguments inside this call: one handler covers them all.
        with usage_in_one_line():
            return super().invoke(ctx)


OneLineGroup.group_class = OneLineGroup


# --- tables -------------------------------------------------------------------------------------


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str = "",
    min_widths: Sequence[int] = (),
    sep: str = "  ",
) -> list[str]:
    """The lines of a plain-text table: each column as wide as its widest cell (or min_widths).

    `align` holds one `<` (left, the default) or `>` (right) per column. Trailing blanks are cut
    so that a diff or `grep -x` of the output is not fooled by padding.
    """
    n = len(header)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(n)]
    widths = [max(w, m) for w, m in zip(widths, [*min_widths, *[0] * n], strict=False)]
    sides = [*align, *"<" * n][:n]
    return [
        sep.join(
            format(str(v), f"{side}{w}") for v, w, side in zip(row, widths, sides, strict=True)
        ).rstrip()
        for row in [header, *rows]
    ]


def print_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    align: str = "",
    min_widths: Sequence[int] = (),
    sep: str = "  ",
) -> None:
    """Print `format_table(...)` on stdout."""
    for line in format_table(header, rows, align=align, min_widths=min_widths, sep=sep):
        click.echo(line)


# --- dates --------------------------------------------------------------------------------------


class UTCDate(click.ParamType):
    """YYYY-MM-DD (a UTC observation day), or `today` / `yesterday` (UTC).

    Exactly ten characters: `2025-10-5` is refused rather than guessed, since a day selects a
    Dagster partition and a wrong guess would silently select nothing.
    """

    name = "YYYY-MM-DD"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        text = str(value).strip().lower()
        today = dt.datetime.now(dt.UTC).date()
        if text == "today":
            return today
        if text == "yesterday":
            return today - dt.timedelta(days=1)
        try:
            if len(text) != 10:
                raise ValueError(text)
            return dt.date.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is not a date; use YYYY-MM-DD (UTC), today or yesterday", param, ctx
            )


DATE = UTCDate()


def sample_day_options(max_days: int) -> Callable[[F], F]:
    """`--days`, `--start` and `--per-day` of the commands that make sample days (`demo`,
    `sample-data`): one definition, so their defaults and ranges cannot drift apart."""
    options = (
        click.option(
            "--days",
            default=3,
            show_default=True,
            type=click.IntRange(1, max_days),
            help="Observation days of sample data.",
        ),
        click.option(
            "--start",
            type=DATE,
            default=SAMPLE_FIRST_DAY.isoformat(),
            show_default=True,
            help="First day (UTC).",
        ),
        click.option(
            "--per-day",
            default=12,
            show_default=True,
            type=click.IntRange(1, 288),
            help="Images per day, 5 minutes apart from 02:00 UTC.",
        ),
    )

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
