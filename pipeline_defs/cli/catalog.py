"""`contimg images list/show`, `contimg queue`, `contimg cal applylist`, `contimg stats`.

Thin over `resources.repositories`. Exit statuses (docs/catalogue.md): 0 on success, including an
empty result ("no images match"); 2 on bad input (an unknown date format, an RA outside [0, 360),
a Dec outside [-90, 90], a negative radius, an unknown grade...), printed as ONE line
`error: ...` without the usage block; 1 when a database cannot be read, printed as one line with
the URL masked. Never a traceback.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from resources.database import Databases
from resources.errors import ContimgError, InvalidQueryError
from resources.repositories import calibration, ingest, registry, stats
from resources.repositories.images import (
    GRADE_CHOICES,
    SORT_KEYS,
    SUMMARY_FIELDS,
    ImageFilter,
    ImageSummary,
    get_image,
    list_images,
)
from resources.repositories.sky import Cone
from resources.secrets import mask_text

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LIMIT = 100


# --- one-line errors --------------------------------------------------------------------------


class OneLineUsageError(click.UsageError):
    """Bad input: one `error: ...` line on stderr, exit status 2 (no usage block)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class QueryFailed(click.ClickException):
    """A database could not answer: one line, URL masked, exit status 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _one_line(exc: click.UsageError) -> OneLineUsageError:
    message = exc.format_message().replace("\n", " ").strip()
    if exc.ctx is not None and "--help" not in message:
        message += f" (see `{exc.ctx.command_path} --help`)"
    return OneLineUsageError(message)


class OneLineCommand(click.Command):
    """A command whose parse and validation errors are one line (exit 2)."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line(exc) from None


class OneLineGroup(click.Group):
    command_class = OneLineCommand

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line(exc) from None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _one_line(exc) from None


def _database_errors(database: str) -> Callable[[F], F]:
    """Turn database failures into one masked line and exit status 1."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                dbs = Databases.from_env()
            except ContimgError as exc:  # a malformed URL setting
                raise QueryFailed(mask_text(str(exc))) from None
            # The error line below says it all: without a handler, Python's last-resort handler
            # would also print the pool's own multi-line warning about the failed connection.
            quiet = logging.NullHandler()
            logging.getLogger("resources").addHandler(quiet)
            try:
                return func(dbs, *args, **kwargs)
            except InvalidQueryError as exc:
                raise OneLineUsageError(str(exc)) from None
            except (SQLAlchemyError, ContimgError) as exc:
                detail = str(getattr(exc, "orig", None) or exc).splitlines()[0].strip()
                hint = ""
                if "no such table" in detail or "does not exist" in detail:
                    hint = " (run `contimg db upgrade`)"
                raise QueryFailed(
                    dbs.mask(
                        f"{database} database ({dbs.masked_url(database)}): "
                        f"{type(exc).__name__}: {detail}{hint}"
                    )
                ) from None
            finally:
                logging.getLogger("resources").removeHandler(quiet)

        return wrapper  # type: ignore[return-value]

    return decorate


# --- parameter types --------------------------------------------------------------------------


class UTCDate(click.ParamType):
    """YYYY-MM-DD (a UTC observation day), or `today` / `yesterday` (UTC)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
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
DATE = UTCDate()


def _cone(value: tuple[float, float, float] | None) -> Cone | None:
    if not value:
        return None
    ra, dec, radius = value
    try:
        RA.convert(ra, None, None)
        DEC.convert(dec, None, None)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="'--cone'") from None
    if not math.isfinite(radius) or radius < 0 or radius > 180:
        raise click.BadParameter(
            f"radius {radius:g} is outside [0, 180] degrees", param_hint="'--cone'"
        )
    return Cone(ra, dec, radius)


def _grades(values: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for grade in value.split(","):
            grade = grade.strip().lower()
            if not grade:
                continue
            if grade not in GRADE_CHOICES:
                raise click.BadParameter(
                    f"{grade!r} is not one of {', '.join(GRADE_CHOICES)}", param_hint="'--grade'"
                )
            out.append(grade)
    return tuple(dict.fromkeys(out))


# --- output helpers ---------------------------------------------------------------------------


def _num(value: float | None, spec: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return format(value, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


# --- images ---------------------------------------------------------------------------------


@click.group("images", cls=OneLineGroup)
def images() -> None:
    """Browse the image catalogue (filters by date, position, grade, telescope, path)."""


@images.command("list")
@click.option("--date", "date", type=DATE, help="One UTC observation day (YYYY-MM-DD).")
@click.option("--from", "date_from", type=DATE, help="First UTC day of a range (inclusive).")
@click.option("--to", "date_to", type=DATE, help="Last UTC day of a range (inclusive).")
@click.option("--ra-min", type=RA, help="Box: lowest RA, degrees [0, 360).")
@click.option("--ra-max", type=RA, help="Box: highest RA; below --ra-min wraps through 0.")
@click.option("--dec-min", type=DEC, help="Box: lowest Dec, degrees [-90, 90].")
@click.option("--dec-max", type=DEC, help="Box: highest Dec, degrees [-90, 90].")
@click.option(
    "--cone",
    type=(float, float, float),
    default=None,
    metavar="RA DEC RADIUS",
    help="Images whose centre is within RADIUS degrees of (RA, DEC).",
)
@click.option(
    "--grade",
    "grades",
    multiple=True,
    help=f"QA grade (repeatable or comma-separated): {', '.join(GRADE_CHOICES)}.",
)
@click.option("--telescope", help="Telescope name (case-insensitive).")
@click.option("--path", "path_glob", metavar="GLOB", help="Shell glob over the full path.")
@click.option(
    "--sort", type=click.Choice(SORT_KEYS), default="date", show_default=True, help="Sort key."
)
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="At most this many images (0: no limit).",
)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@_database_errors("products")
def images_list(
    dbs: Databases,
    date: dt.date | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    ra_min: float | None,
    ra_max: float | None,
    dec_min: float | None,
    dec_max: float | None,
    cone: tuple[float, float, float] | None,
    grades: tuple[str, ...],
    telescope: str | None,
    path_glob: str | None,
    sort: str,
    desc: bool,
    limit: int,
    offset: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List images matching every given filter (dates are UTC observation days)."""
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")
    if date is not None and (date_from is not None or date_to is not None):
        raise click.UsageError("give --date or --from/--to, not both")
    flt = ImageFilter(
        date=date,
        date_from=date_from,
        date_to=date_to,
        ra_min=ra_min,
        ra_max=ra_max,
        dec_min=dec_min,
        dec_max=dec_max,
        cone=_cone(cone),
        grades=_grades(grades),
        telescope=telescope,
        path_glob=path_glob,
        sort=sort,
        descending=desc,
        limit=limit or None,
        offset=offset,
    ).validate()
    with dbs.connect("products") as conn:
        rows = list_images(conn, flt)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.to_json_dict(), sort_keys=False))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(SUMMARY_FIELDS)
        for row in rows:
            writer.writerow([_csv_value(getattr(row, name)) for name in SUMMARY_FIELDS])
    elif rows:
        _table(
            ("ID", "DATE_OBS (UTC)", "RA", "DEC", "GRADE", "RMS mJy", "DR", "TELESCOPE", "PATH"),
            [_summary_cells(r) for r in rows],
        )
    if not rows:
        click.echo("no images match", err=as_json or as_csv)
    elif flt.limit is not None and len(rows) == flt.limit:
        click.echo(f"({len(rows)} shown; more may match: use --limit/--offset)", err=True)


def _summary_cells(r: ImageSummary) -> tuple[str, ...]:
    return (
        str(r.id),
        _when(r.date_obs),
        _num(r.ra_deg, ".4f"),
        _num(r.dec_deg, "+.4f"),
        r.grade or "-",
        _num(r.rms_jy * 1e3 if r.rms_jy is not None else None, ".3f"),
        _num(r.dynamic_range, ".0f"),
        r.telescope or "-",
        r.path,
    )


@images.command("show")
@click.argument("path_or_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@_database_errors("products")
def images_show(dbs: Databases, path_or_id: str, as_json: bool) -> None:
    """Everything known about one image: metadata, QA, thumbnail, registry, ingest history."""
    with dbs.connect("products") as conn:
        detail = get_image(conn, path_or_id)
    if detail is None:
        raise QueryFailed(f"no image with path or id {path_or_id!r} in the catalogue")
    products = _products_of(dbs, detail.path)
    queue_row = _ingest_of(dbs, detail.path)
    if as_json:
        out = detail.to_json_dict()
        out["registry"] = [_jsonable(vars_of(p)) for p in products]
        out["ingest"] = _jsonable(vars_of(queue_row)) if queue_row is not None else None
        click.echo(json.dumps(out))
        return
    m = detail.image
    click.echo(m["path"])
    click.echo(f"  id         {m['id']}")
    click.echo(
        f"  observed   {_when(m['date_obs'])} UTC (MJD {_num(m['mjd_obs'], '.6f')}), "
        f"day {m['obs_date'] or '-'}"
    )
    click.echo(
        f"  centre     RA {_num(m['ra_deg'], '.6f')} deg, Dec {_num(m['dec_deg'], '+.6f')} deg"
    )
    axes = "x".join(str(n) for n in m["naxis"] or [])
    click.echo(
        f"  image      {m['width']} x {m['height']} px (axes {axes}), BITPIX {m['bitpix']}, "
        f"HDU {m['hdu_index']}, {m['size_bytes']:,} bytes"
    )
    freq = m["freq_hz"] / 1e6 if m["freq_hz"] is not None else None
    bw = m["bandwidth_hz"] / 1e6 if m["bandwidth_hz"] is not None else None
    click.echo(
        f"  frequency  {_num(freq, '.3f')} MHz, bandwidth {_num(bw, '.3f')} MHz, "
        f"Stokes {m['stokes'] or '-'}"
    )
    click.echo(
        f"  beam       {_num(m['beam_major_arcsec'], '.2f')} x "
        f"{_num(m['beam_minor_arcsec'], '.2f')} arcsec, PA {_num(m['beam_pa_deg'], '.1f')} deg"
    )
    click.echo(
        f"  telescope  {m['telescope'] or '-'}; object {m['object'] or '-'}; "
        f"cell {_num(m['cellsize_arcsec'], '.3f')} arcsec"
    )
    for warning in m["warnings"] or []:
        click.echo(f"  warning    {warning}")
    qa = detail.qa
    if qa is None:
        click.echo("  QA         not graded yet")
    else:
        rms = qa.rms_jy * 1e3 if qa.rms_jy is not None else None
        click.echo(
            f"  QA         {qa.grade.upper()}: rms {_num(rms, '.3f')} mJy/beam, "
            f"peak {_num(qa.peak_jy, '.4g')} Jy/beam, DR {_num(qa.dynamic_range, '.1f')}, "
            f"NaN {_num(qa.nan_fraction, '.1%')} (graded {_when(qa.computed_at)})"
        )
        for reason in qa.reasons:
            click.echo(f"    reason   {reason}")
    thumb = detail.thumbnail
    click.echo(
        f"  thumbnail  {thumb.path} ({thumb.width} x {thumb.height})"
        if thumb
        else "  thumbnail  none yet"
    )
    if not products:
        click.echo("  registry   no products registered")
    for p in products:
        where = p.published_path or p.stage_path or "-"
        extra = f"; {p.reason}" if p.reason else ""
        click.echo(
            f"  registry   {p.product_type:<9} {p.status:<10} qa {p.qa_status:<7} {where}{extra}"
        )
    if queue_row is None:
        click.echo("  ingest     no queue row")
    else:
        q = queue_row
        click.echo(
            f"  ingest     {q.state}, {q.attempts} attempt(s); discovered {_when(q.discovered_at)}, "
            f"claimed {_when(q.claimed_at)} by {q.claimed_by or '-'}, "
            f"completed {_when(q.completed_at)}"
        )
        if q.last_error:
            click.echo(f"    error    {q.error_class or '-'}: {q.last_error.splitlines()[0]}")


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in values.items()
    }


def _products_of(dbs: Databases, path: str) -> list[registry.ProductRow]:
    try:
        with dbs.connect("data_registry") as conn:
            return registry.products_of_image(conn, path)
    except SQLAlchemyError as exc:
        click.echo(dbs.mask(f"warning: data_registry unreadable: {type(exc).__name__}"), err=True)
        return []


def _ingest_of(dbs: Databases, path: str) -> ingest.QueueRow | None:
    try:
        with dbs.connect("ingest") as conn:
            return ingest.history(conn, path)
    except SQLAlchemyError as exc:
        click.echo(dbs.mask(f"warning: ingest unreadable: {type(exc).__name__}"), err=True)
        return None


# --- queue ----------------------------------------------------------------------------------


@click.command("queue", cls=OneLineCommand)
@click.option(
    "--stuck-minutes",
    type=click.IntRange(min=0),
    default=None,
    help="in_progress longer than this counts as stuck (default CONTIMG_INGEST_STALE_MINUTES, 30).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Rows listed per section.",
)
@click.option("--retry-failed", is_flag=True, help="Move failed rows back to pending.")
@click.option("--date", "obs_date", type=DATE, help="With --retry-failed: only this day.")
@click.option("--yes", is_flag=True, help="Do not ask before --retry-failed.")
@_database_errors("ingest")
def queue(
    dbs: Databases,
    stuck_minutes: int | None,
    limit: int,
    retry_failed: bool,
    obs_date: dt.date | None,
    yes: bool,
) -> None:
    """The ingest queue: counts by state, oldest pending, stuck and failed rows."""
    after = dt.timedelta(minutes=stuck_minutes) if stuck_minutes is not None else None
    with dbs.connect("ingest") as conn:
        summary = ingest.summary(conn, stuck_after=after, limit=limit)
    _table(("STATE", "ROWS"), [(s, str(n)) for s, n in summary.counts.items()])
    now = dt.datetime.now(dt.UTC)
    op = summary.oldest_pending
    if op is None:
        click.echo("oldest pending: none")
    else:
        age = _age(now, op.discovered_at)
        click.echo(
            f"oldest pending: {op.path} (discovered {_when(op.discovered_at)} UTC, {age} ago)"
        )
    minutes = int(summary.stuck_after.total_seconds() // 60)
    click.echo(
        f"stuck (in_progress > {minutes} min): {len(summary.stuck)}"
        + (" (first shown)" if len(summary.stuck) == limit else "")
    )
    for row in summary.stuck:
        click.echo(
            f"  {row.path}  claimed {_when(row.claimed_at)} by {row.claimed_by or '-'} "
            f"({_age(now, row.claimed_at)} ago), attempt {row.attempts}"
        )
    n_failed = summary.counts.get("failed", 0)
    click.echo(f"failed: {n_failed}")
    for row in summary.failed:
        message = (row.last_error or "").splitlines()[0] if row.last_error else ""
        click.echo(f"  {row.path}  {row.error_class or '-'}: {message} (attempts {row.attempts})")
    if not retry_failed:
        return
    with dbs.connect("ingest") as conn:
        to_retry = len(ingest.failed_rows(conn, obs_date=obs_date, limit=None))
    scope = f" of {obs_date}" if obs_date else ""
    if to_retry == 0:
        click.echo(f"no failed rows{scope} to retry")
        return
    if not yes and not click.confirm(
        f"Move {to_retry} failed row(s){scope} back to pending?", default=False
    ):
        click.echo("retry aborted; nothing changed")
        return
    moved = ingest.retry_failed(dbs.engine("ingest"), obs_date=obs_date)
    click.echo(f"moved {moved} failed row(s){scope} back to pending")


def _age(now: dt.datetime, then: dt.datetime | None) -> str:
    if then is None:
        return "-"
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


# --- calibration ------------------------------------------------------------------------------


@click.group("cal", cls=OneLineGroup)
def cal() -> None:
    """Calibration registry queries."""


@cal.command("applylist")
@click.option("--mjd", type=float, required=True, help="Modified Julian Date of the data.")
@click.option(
    "--window-hours",
    type=click.FloatRange(min=0),
    default=12.0,
    show_default=True,
    help="Validity windows are widened by this much on each side.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per table, in order.")
@_database_errors("cal_registry")
def cal_applylist(dbs: Databases, mjd: float, window_hours: float, as_json: bool) -> None:
    """The calibration tables to apply at --mjd, in apply order (newest covering set)."""
    if not math.isfinite(mjd):
        raise click.BadParameter(f"{mjd} is not a finite MJD", param_hint="'--mjd'")
    with dbs.connect("cal_registry") as conn:
        tables = calibration.applylist(conn, mjd, window_hours)
    if not tables:
        click.echo(f"no active calibration tables apply at MJD {mjd}", err=as_json)
        return
    if as_json:
        for t in tables:
            click.echo(json.dumps(_jsonable(vars_of(t))))
        return
    click.echo(f"set {tables[0].set_name} applies at MJD {mjd}:")
    _table(
        ("ORDER", "TYPE", "VALID MJD", "REFANT", "PATH"),
        [
            (
                str(t.apply_order),
                t.table_type,
                f"{t.valid_start_mjd:.4f}..{t.valid_end_mjd:.4f}",
                t.refant or "-",
                t.path,
            )
            for t in tables
        ],
    )


# --- daily statistics -------------------------------------------------------------------------


@click.command("stats", cls=OneLineCommand)
@click.option("--from", "date_from", type=DATE, help="First UTC day (inclusive).")
@click.option("--to", "date_to", type=DATE, help="Last UTC day (inclusive).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per day.")
@_database_errors("products")
def stats_cmd(
    dbs: Databases, date_from: dt.date | None, date_to: dt.date | None, as_json: bool
) -> None:
    """Per-day statistics: images, grades, failed parses, rms and dynamic range."""
    if date_from and date_to and date_from > date_to:
        raise click.BadParameter(
            f"--from {date_from} is after --to {date_to}", param_hint="'--from'"
        )
    with dbs.connect("products") as conn:
        rows = stats.daily_stats(conn, date_from, date_to)
    if not rows:
        click.echo("no daily statistics in that range", err=as_json)
        return
    if as_json:
        for r in rows:
            click.echo(json.dumps(r.to_json_dict()))
        return
    _table(
        (
            "DAY",
            "IMAGES",
            "GOOD",
            "WARN",
            "FAIL",
            "UNGRADED",
            "PARSE FAIL",
            "RMS MED mJy",
            "RMS P95 mJy",
            "DR MED",
        ),
        [
            (
                r.obs_date.isoformat(),
                str(r.n_images),
                str(r.n_good),
                str(r.n_warn),
                str(r.n_fail),
                str(r.n_ungraded),
                str(r.n_failed_parses),
                _num(r.rms_median_jy * 1e3 if r.rms_median_jy is not None else None, ".3f"),
                _num(r.rms_p95_jy * 1e3 if r.rms_p95_jy is not None else None, ".3f"),
                _num(r.dr_median, ".0f"),
            )
            for r in rows
        ],
    )


COMMANDS: list[click.Command] = [images, queue, cal, stats_cmd]
