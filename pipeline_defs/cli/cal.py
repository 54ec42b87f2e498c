"""`contimg cal`: the calibration registry: which tables apply at an MJD, registering, retiring,
listing and scanning tables, and which tables were applied to a measurement set.

Thin over `resources.repositories.cal_registry` (and `resources.calibration` for reading the
tables, imported only when a command reads one: it pulls in casacore). Errors and exit statuses
as docs/catalogue.md says: bad input (conflicting options, a reversed window, a path that does not
exist) exits 2 with one line; a table that cannot be read, an overlap the registry refuses, or a
database that cannot be read exits 1 with one line, and nothing is written. docs/calibration.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from pipeline_defs.cli._catalogue import database_errors, jsonable, vars_of, when
from pipeline_defs.cli.output import OneLineGroup, OneLineUsageError, fail, print_table
from resources.database import Databases
from resources.errors import (
    CalibrationConflictError,
    CasaTableError,
    ContimgError,
    FileNameError,
)
from resources.models.cal_registry import CALTABLE_STATUSES, CALTABLE_TYPES
from resources.repositories import cal_registry, products


@click.group("cal", cls=OneLineGroup)
def cal() -> None:
    """Calibration tables: register, retire, list, scan, apply lists and what was applied."""


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
@database_errors("cal_registry")
def cal_applylist(dbs: Databases, mjd: float, window_hours: float, as_json: bool) -> None:
    """The calibration tables to apply at --mjd, in apply order (newest covering set)."""
    if not math.isfinite(mjd):
        raise click.BadParameter(f"{mjd} is not a finite MJD", param_hint="'--mjd'")
    with dbs.connect("cal_registry") as conn:
        tables = cal_registry.applylist(conn, mjd, window_hours)
    if not tables:
        click.echo(f"no active calibration tables apply at MJD {mjd}", err=as_json)
        return
    if as_json:
        for t in tables:
            click.echo(json.dumps(jsonable(vars_of(t))))
        return
    click.echo(f"set {tables[0].set_name} applies at MJD {mjd}:")
    print_table(
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


def _window(start: float, end: float) -> str:
    return f"{start:.4f}..{end:.4f}"


def _show_tables(rows: Sequence[cal_registry.CaltableRow]) -> None:
    print_table(
        ("SET", "TYPE", "STATUS", "VALID MJD", "FIELD", "PATH"),
        [
            (
                r.set_name,
                r.table_type,
                r.status,
                _window(r.valid_start_mjd, r.valid_end_mjd),
                r.cal_field or "-",
                r.path,
            )
            for r in rows
        ],
    )


def _finite(value: float | None, option: str) -> None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite MJD", param_hint=f"'{option}'")


@cal.command("register")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--set", "set_name", help="Set name (default: the file name without its suffix).")
@click.option("--valid-from", type=float, help="Start of validity, MJD (with --valid-to).")
@click.option("--valid-to", type=float, help="End of validity, MJD (with --valid-from).")
@click.option(
    "--supersede",
    is_flag=True,
    help="Retire the active tables of other sets whose windows overlap, instead of refusing.",
)
@click.option("--notes", help="A note kept with each table.")
@database_errors("cal_registry")
def cal_register(
    dbs: Databases,
    paths: tuple[Path, ...],
    set_name: str | None,
    valid_from: float | None,
    valid_to: float | None,
    supersede: bool,
    notes: str | None,
) -> None:
    """Register calibration tables PATHS as one set, valid over their TIME range by default.

    Refused (exit 1, nothing written) when a table of the same type in another active set
    overlaps; --supersede retires those instead.
    """
    from resources.calibration.scan import set_name_from_path
    from resources.calibration.tables import read_caltable

    if (valid_from is None) != (valid_to is None):
        raise OneLineUsageError("--valid-from and --valid-to go together: give both or neither")
    _finite(valid_from, "--valid-from")
    _finite(valid_to, "--valid-to")
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise OneLineUsageError(
            f"--valid-to {valid_to} is before --valid-from {valid_from}: a reversed window"
        )
    if set_name is None:
        names = sorted({set_name_from_path(p) for p in paths})
        if len(names) != 1:
            raise OneLineUsageError(
                f"the tables name different sets ({', '.join(names)}): pass --set NAME"
            )
        set_name = names[0]
    try:
        infos = [read_caltable(p) for p in paths]
    except (CasaTableError, FileNameError) as exc:
        fail(exc)
    if valid_from is not None and valid_to is not None:
        infos = [dataclasses.replace(i, start_mjd=valid_from, end_mjd=valid_to) for i in infos]
    bind = dbs.engine("cal_registry")
    try:
        result = cal_registry.register_caltables(
            bind, infos, set_name=set_name, supersede=supersede, notes=notes
        )
    except CalibrationConflictError as exc:
        fail(exc)
    click.echo(result.summary())
    for path in result.retired:
        click.echo(f"  retired {path}")
    if result.registered:
        registered = set(result.registered)
        _show_tables(
            [
                r
                for r in cal_registry.list_caltables(bind, set_name=set_name)
                if r.path in registered
            ]
        )


@cal.command("retire")
@click.argument("paths", nargs=-1)
@click.option("--set", "set_name", help="Retire every table of this set.")
@database_errors("cal_registry")
def cal_retire(dbs: Databases, paths: tuple[str, ...], set_name: str | None) -> None:
    """Retire tables PATHS, or every table of --set: they stay listed but no longer apply."""
    if bool(paths) == (set_name is not None):
        raise OneLineUsageError("give either PATH... or --set NAME (one of the two)")
    bind = dbs.engine("cal_registry")
    resolved = [str(Path(p).expanduser().resolve()) for p in paths]
    retired = cal_registry.retire(bind, paths=resolved or None, set_name=set_name)
    if retired == 0:
        registered = (
            cal_registry.known_paths(bind, resolved)
            if resolved
            else cal_registry.list_caltables(bind, set_name=set_name)
        )
        if not registered:
            what = f"set {set_name}" if set_name is not None else ", ".join(resolved)
            fail(f"no registered calibration table matches {what}")
    click.echo(f"{retired} " + ("table" if retired == 1 else "tables") + " retired")


@cal.command("list")
@click.option("--status", type=click.Choice(CALTABLE_STATUSES), help="Only this status.")
@click.option("--set", "set_name", help="Only this set.")
@click.option("--type", "table_type", type=click.Choice(CALTABLE_TYPES), help="Only this type.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array of objects: id, set_name, path, table_type, apply_order, status, "
    "valid_start_mjd, valid_end_mjd, created_at, cal_field, refant, notes.",
)
@database_errors("cal_registry")
def cal_list(
    dbs: Databases,
    status: str | None,
    set_name: str | None,
    table_type: str | None,
    as_json: bool,
) -> None:
    """The registered calibration tables, newest window first."""
    rows = cal_registry.list_caltables(
        dbs.engine("cal_registry"), status=status, set_name=set_name, table_type=table_type
    )
    if as_json:
        click.echo(json.dumps([jsonable(vars_of(r)) for r in rows]))
        return
    if not rows:
        click.echo("no calibration tables match")
        return
    _show_tables(rows)


@cal.command("scan")
@click.argument(
    "directories", nargs=-1, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@database_errors("cal_registry")
def cal_scan(dbs: Databases, directories: tuple[Path, ...]) -> None:
    """Register the new calibration tables under DIRECTORIES (default: CONTIMG_CALTABLE_DIRS).

    As the sensor does: each table joins the set named by its file name without the suffix.
    Each unreadable or refused table is one `warning:` line on stderr; exit 0 all the same.
    """
    from resources.calibration.scan import scan_directories
    from resources.settings import caltable_dirs

    dirs = [d.resolve() for d in directories] or caltable_dirs()
    result = scan_directories(dbs.engine("cal_registry"), dirs)
    # The message names the table; a refused set is one message for all its tables.
    for line in dict.fromkeys(f"warning: {f.error_class}: {f.message}" for f in result.failures):
        click.echo(line, err=True)
    click.echo(result.summary())
    for set_name in result.sets:
        click.echo(f"  registered set {set_name}")


@cal.command("record-applied")
@click.argument("ms_path")
@click.option("--set", "set_name", help="Record this set's active tables.")
@click.option("--mjd", type=float, help="Record the apply list at this MJD (`cal applylist`).")
@click.option(
    "--window-hours",
    type=click.FloatRange(min=0),
    default=cal_registry.DEFAULT_WINDOW_HOURS,
    show_default=True,
    help="With --mjd: validity windows are widened by this much on each side.",
)
@database_errors("cal_registry")
def cal_record_applied(
    dbs: Databases, ms_path: str, set_name: str | None, mjd: float | None, window_hours: float
) -> None:
    """Record which tables were applied to MS_PATH (replacing its earlier record)."""
    if (set_name is None) == (mjd is None):
        raise OneLineUsageError("give either --set NAME or --mjd MJD (one of the two)")
    _finite(mjd, "--mjd")
    bind = dbs.engine("cal_registry")
    if mjd is not None:
        with dbs.connect("cal_registry") as conn:
            ids = [t.id for t in cal_registry.applylist(conn, mjd, window_hours)]
        what = f"at MJD {mjd}"
    else:
        ids = [t.id for t in cal_registry.list_caltables(bind, status="active", set_name=set_name)]
        what = f"in set {set_name}"
    if not ids:
        fail(f"no active calibration tables {what}; nothing recorded for {ms_path}")
    ms = str(Path(ms_path).expanduser().resolve())
    try:
        records = cal_registry.record_applied(bind, ms, ids)
    except CalibrationConflictError as exc:
        fail(exc)
    click.echo(f"recorded {len(records)} calibration tables applied to {ms}")
    _show_applied(records)
    _copy_to_ms_index(dbs, ms, [r.set_name for r in records])


def _copy_to_ms_index(dbs: Databases, ms: str, sets: list[str]) -> None:
    """The MS's stage and set in the products index now, not at the next `measurement_sets`
    run (which copies it too); the registry's record stands whatever happens here."""
    try:
        with dbs.begin("products") as conn:
            indexed = products.set_ms_calibration(conn, ms, sets)
    except (SQLAlchemyError, ContimgError) as exc:
        reason = str(exc).splitlines()[0] if isinstance(exc, ContimgError) else type(exc).__name__
        click.echo(dbs.mask(f"warning: products.ms_index not updated: {reason}"), err=True)
        return
    if not indexed:
        click.echo(f"note: {ms} is not in the MS index yet (`contimg ms scan`)", err=True)


def _show_applied(records: Sequence[cal_registry.AppliedRecord]) -> None:
    print_table(
        ("ORDER", "TYPE", "SET", "STATUS", "APPLIED", "PATH"),
        [
            (str(r.apply_order), r.table_type, r.set_name, r.status, when(r.applied_at), r.path)
            for r in records
        ],
    )


@cal.command("applied")
@click.argument("ms_path")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array of objects: ms_path, caltable_id, path, table_type, apply_order, "
    "set_name, status, applied_at.",
)
@database_errors("cal_registry")
def cal_applied(dbs: Databases, ms_path: str, as_json: bool) -> None:
    """The calibration tables recorded as applied to MS_PATH, with each table's status now."""
    ms = str(Path(ms_path).expanduser().resolve())
    records = cal_registry.applied_to(dbs.engine("cal_registry"), [ms])[ms]
    if as_json:
        click.echo(json.dumps([jsonable(vars_of(r)) for r in records]))
        return
    if not records:
        click.echo(f"no calibration recorded for {ms}")
        return
    _show_applied(records)
    stale = [r for r in records if r.status != "active"]
    if stale:
        click.echo(f"{len(stale)} of {len(records)} tables applied are now retired")


COMMANDS: list[click.Command] = [cal]
