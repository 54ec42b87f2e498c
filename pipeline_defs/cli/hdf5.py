"""`contimg hdf5`: the correlator's subband files: groups of a day, unreadable files, a scan.

Thin over `resources.repositories.hdf5` (and `resources.hdf5.scan` for `scan`, imported only
when it runs: it pulls in h5py and numpy). No Dagster: `hdf5 scan` registers and regroups
exactly what `hdf5_files_sensor` would, without the daemon. Errors and exit statuses as every
command's (`pipeline_defs.cli.output`): a bad date exits 2 with one line; a database that cannot
be read or is not migrated exits 1 with one line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from assets.hdf5.summary import subband_list
from pipeline_defs.cli._catalogue import database_errors
from pipeline_defs.cli.output import DATE, OneLineGroup, print_table
from resources.database import Databases
from resources.hdf5.grouping import SubbandGroup
from resources.repositories import hdf5 as repo


@click.group("hdf5", cls=OneLineGroup)
def hdf5() -> None:
    """Correlator subband files: observation groups, unreadable files, a scan."""


@hdf5.command("groups")
@click.option("--date", "day", type=DATE, required=True, help="Observation day (UTC).")
@click.option("--incomplete", is_flag=True, help="Only the groups that lack a subband.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array of objects: group_id, start, end, n_files, subbands, missing_subbands, "
    "duplicate_subbands, complete.",
)
@database_errors("hdf5")
def hdf5_groups(dbs: Databases, day: dt.date, incomplete: bool, as_json: bool) -> None:
    """The observation groups of --date: files, present, missing and duplicate subbands."""
    groups: list[SubbandGroup] = repo.day_groups(dbs.engine("hdf5"), day)
    shown = [g for g in groups if not g.complete] if incomplete else groups
    if as_json:
        click.echo(json.dumps([g.to_dict() for g in shown]))
        return
    if not shown:
        what = "incomplete subband groups" if incomplete else "subband groups"
        click.echo(f"no {what} on {day.isoformat()}")
        return
    print_table(
        ("GROUP", "FILES", "SUBBANDS", "MISSING", "DUPLICATES", "COMPLETE"),
        [
            (
                g.group_id,
                str(g.n_files),
                subband_list(g.subbands),
                subband_list(g.missing),
                subband_list(g.duplicates),
                "yes" if g.complete else "no",
            )
            for g in shown
        ],
        align="<>",
    )
    n_complete = sum(1 for g in groups if g.complete)
    click.echo(f"{n_complete} of {len(groups)} groups complete on {day.isoformat()}")


@hdf5.command("failed")
@click.option("--date", "day", type=DATE, required=True, help="Observation day (UTC).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array of objects: path, filename, obs_date, error_class, error.",
)
@database_errors("hdf5")
def hdf5_failed(dbs: Databases, day: dt.date, as_json: bool) -> None:
    """The files of --date whose header could not be read (they join no group), with the error."""
    failures = repo.day_failures(dbs.engine("hdf5"), day)
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in failures]))
        return
    if not failures:
        click.echo(f"no unreadable subband files on {day.isoformat()}")
        return
    print_table(
        ("FILE", "ERROR", "MESSAGE"),
        [(f.filename, f.error_class, f.error.replace(f.path, "").lstrip(": ")) for f in failures],
    )


@hdf5.command("scan")
@click.argument(
    "directories", nargs=-1, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@database_errors("hdf5")
def hdf5_scan(dbs: Databases, directories: tuple[Path, ...]) -> None:
    """Register the new or changed subband files under DIRECTORIES (default: CONTIMG_HDF5_DIRS).

    Headers only, as the sensor does; the days of the files read are regrouped. Each unreadable
    file is one `warning:` line on stderr; exit 0 all the same (`contimg hdf5 failed --date D`
    lists them).
    """
    from resources.hdf5.scan import scan_directories
    from resources.settings import hdf5_dirs

    dirs = [d.resolve() for d in directories] or hdf5_dirs()
    result = scan_directories(dbs.engine("hdf5"), dirs)
    for failure in result.report.failures:  # the error names the file
        click.echo(f"warning: {failure.error_class}: {failure.error}", err=True)
    click.echo(result.summary())
    for day in result.days:
        groups = repo.day_groups(dbs.engine("hdf5"), day)
        complete = sum(1 for g in groups if g.complete)
        failed = len(repo.day_failures(dbs.engine("hdf5"), day))
        click.echo(
            f"  {day.isoformat()}: {len(groups)} groups, {complete} complete, "
            f"{failed} unreadable files"
        )


COMMANDS: list[click.Command] = [hdf5]
