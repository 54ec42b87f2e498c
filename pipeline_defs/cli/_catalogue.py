"""What the catalogue commands (`images`, `queue`, `cal`, `stats`) share: database errors, cells.

Thin over `resources.repositories`. Exit statuses (docs/catalogue.md): 0 on success, including an
empty result ("no images match"); 2 on bad input (an unknown date format, an RA outside [0, 360),
a Dec outside [-90, 90], a negative radius, an unknown grade...), printed as ONE line
`error: ...` without the usage block; 1 when a database cannot be read or is not migrated
(`error: database 'ingest': not migrated: ... Run `contimg db upgrade` ...`), printed as one line
with the URL masked. Never a traceback. The lines themselves are made by `pipeline_defs.cli.output`.

The commands only read: a SQLite file that does not exist is reported, never created.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from migrations.runner import schema_state
from pipeline_defs.cli.output import OneLineUsageError, fail
from resources.database import Databases, install_schema_reader
from resources.errors import ContimgError, DatabaseNotMigratedError, InvalidQueryError

F = TypeVar("F", bound=Callable[..., Any])


def database_errors(database: str) -> Callable[[F], F]:
    """Open the databases for the command; turn their failures into one masked line, exit 1.

    The decorated function receives the `Databases` as its first argument; each database is
    checked to be at head on its first use (`Databases(require_schema=True)`), so an unmigrated
    one is named with the fix instead of `no such table`. An invalid query (InvalidQueryError:
    e.g. an unterminated glob) is bad input, so exit 2.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            install_schema_reader(schema_state)  # importing the runner did it; said for clarity
            try:
                dbs = Databases.from_env(require_schema=True)
            except ContimgError as exc:  # a malformed URL setting
                fail(exc)
            # The error line below says it all: without a handler, Python's last-resort handler
            # would also print the pool's own multi-line warning about the failed connection.
            quiet = logging.NullHandler()
            logging.getLogger("resources").addHandler(quiet)
            try:
                return func(dbs, *args, **kwargs)
            except InvalidQueryError as exc:
                raise OneLineUsageError(str(exc)) from None
            except DatabaseNotMigratedError as exc:
                fail(dbs.mask(str(exc)))
            except (SQLAlchemyError, ContimgError) as exc:
                detail = str(getattr(exc, "orig", None) or exc).splitlines()[0].strip()
                hint = ""
                if "no such table" in detail or "does not exist" in detail:
                    hint = " (run `contimg db upgrade`)"
                fail(
                    dbs.mask(
                        f"{database} database ({dbs.masked_url(database)}): "
                        f"{type(exc).__name__}: {detail}{hint}"
                    )
                )
            finally:
                logging.getLogger("resources").removeHandler(quiet)

        return wrapper  # type: ignore[return-value]

    return decorate


def num(value: float | None, spec: str) -> str:
    """A number for a table cell; `-` when unknown or not finite (NaN reads as missing)."""
    if value is None or not math.isfinite(value):
        return "-"
    return format(value, spec)


def when(value: dt.datetime | None) -> str:
    """A timestamp in UTC, to the second (what operators compare with logs); `-` if none."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def csv_value(value: Any) -> Any:
    """A CSV cell: empty for None, ISO 8601 for dates, the value otherwise."""
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def vars_of(obj: Any) -> dict[str, Any]:
    """The fields of a repository dataclass row, for `--json`."""
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def jsonable(values: dict[str, Any]) -> dict[str, Any]:
    """Dates and timestamps as ISO 8601 strings, so json.dumps accepts the row."""
    return {
        k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in values.items()
    }


# --- parameter types (images, sources) -------------------------------------------------------


class Degrees(click.ParamType):
    """A finite angle in degrees within [low, high) or [low, high]."""

    def __init__(self, low: float, high: float, *, high_inclusive: bool, what: str) -> None:
        self.low, self.high, self.high_inclusive, self.what = low, high, high_inclusive, what
        self.name = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of degrees", param, ctx)
        upper_ok = number <= self.high if self.high_inclusive else number < self.high
        if not math.isfinite(number) or number < self.low or not upper_ok:
            bracket = "]" if self.high_inclusive else ")"
            self.fail(
                f"{self.what} {value} is outside [{self.low:g}, {self.high:g}{bracket} degrees",
                param,
                ctx,
            )
        return number


RA = Degrees(0.0, 360.0, high_inclusive=False, what="RA")
DEC = Degrees(-90.0, 90.0, high_inclusive=True, what="Dec")
