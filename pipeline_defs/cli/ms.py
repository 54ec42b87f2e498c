"""`contimg ms`: the measurement-set index: a day's MSs by stage, one MS's chain, failures, a scan.

Thin over `resources.repositories.products` (the index) and `assets.ms.lineage` (the links into
the hdf5 and cal_registry databases); `ms scan` indexes exactly what `measurement_sets_sensor`
would, without the daemon (casacore is imported only then). No Dagster. Errors and exit statuses
as every command's: a bad date or stage exits 2 with one line; a database that cannot be read
or is not migrated exits 1 with one line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from assets.hdf5.summary import subband_list
from assets.ms.lineage import ms_lineage
from pipeline_defs.cli._catalogue import database_errors, num
from pipeline_defs.cli.output import DATE, OneLineGroup, fail, print_table
from resources.database import Databases
from resources.models.products import MS_STAGES
from resources.repositories import products as repo


@click.group("ms", cls=OneLineGroup)
def ms() -> None:
    """Measurement sets: the index by day and stage, one MS's lineage, unreadable ones, a scan."""


@ms.command("list")
@click.option("--date", "day", type=DATE, default=None, help="Observation day (UTC).")
@click.option("--stage", type=click.Choice(MS_STAGES), default=None, help="Only this stage.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array of objects: id, path, obs_date, start_mjd, end_mjd, mid_mjd, "
    "field_name, ra_deg, dec_deg, n_spw, n_channels, n_rows, ref_freq_hz, hdf5_group, "
    "has_corrected_data, calibrated, cal_set_name, stage, size_bytes, n_images.",
)
@database_errors("products")
def ms_list(dbs: Databases, day: dt.date | None, stage: str | None, as_json: bool) -> None:
    """Indexed measurement sets in time order (of --date, of --stage)."""
    with dbs.connect("products") as conn:
        rows = repo.list_ms(conn, obs_date=day, stage=stage)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows]))
        return
    if not rows:
        what = " ".join(x for x in (stage, "measurement sets") if x)
        click.echo(f"no {what}" + (f" on {day.isoformat()}" if day else " indexed"))
        return
    print_table(
        ("MS", "STAGE", "GROUP", "FIELD", "DEC", "SPW", "CHANNELS", "CALIBRATION", "IMAGES"),
        [
            (
                Path(r.path).name,
                r.stage,
                r.hdf5_group or "-",
                r.field_name or "-",
                num(r.dec_deg, "+.3f"),
                num(r.n_spw, "d"),
                num(r.n_channels, "d"),
                r.cal_set_name or "-",
                str(r.n_images),
            )
            for r in rows
        ],
        align="<<<<>>>><>",
    )
    counts = {s: sum(1 for r in rows if r.stage == s) for s in MS_STAGES}
    click.echo(f"{len(rows)} measurement sets: " + ", ".join(f"{n} {s}" for s, n in counts.items()))


@ms.command("show")
@click.argument("path_or_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@database_errors("products")
def ms_show(dbs: Databases, path_or_id: str, as_json: bool) -> None:
    """One MS: what was read, its subband group, the calibration applied, its images.

    PATH_OR_ID is the MS directory as indexed (`ms list`; a relative path is resolved) or its id.
    """
    with dbs.connect("products") as conn:
        record = repo.get_ms(conn, str(Path(path_or_id).resolve()))
        if record is None and path_or_id.isdigit():
            record = repo.get_ms(conn, int(path_or_id))
        if record is None:
            fail(f"no measurement set with path or id {path_or_id!r} in the index")
        images = repo.images_of_ms(conn, record.id)
    chain = ms_lineage(dbs, record)
    group, applied = chain.group, chain.applied
    if as_json:
        out = record.to_dict()
        out["images"] = images
        out["subband_group"] = group.to_dict() if group is not None else None
        out["calibration"] = [
            {"path": a.path, "table_type": a.table_type, "set_name": a.set_name,
             "status": a.status}
            for a in applied
        ]  # fmt: skip
        click.echo(json.dumps(out))
        return
    r = record
    click.echo(r.path)
    click.echo(f"  id          {r.id}; stage {r.stage}")
    click.echo(
        f"  time        MJD {num(r.start_mjd, '.6f')}..{num(r.end_mjd, '.6f')}, "
        f"day {r.obs_date or '-'}"
    )
    click.echo(
        f"  field       {r.field_name or '-'}: RA {num(r.ra_deg, '.5f')} deg, "
        f"Dec {num(r.dec_deg, '+.5f')} deg"
    )
    freq = r.ref_freq_hz / 1e6 if r.ref_freq_hz is not None else None
    click.echo(
        f"  spectral    {num(r.n_spw, 'd')} spw, {num(r.n_channels, 'd')} channels, "
        f"reference {num(freq, '.3f')} MHz; {num(r.n_rows, 'd')} rows, "
        f"{num(r.size_bytes, ',')} bytes; CORRECTED_DATA {'yes' if r.has_corrected_data else 'no'}"
    )
    if group is not None:
        state = "complete" if group.complete else f"missing {subband_list(group.missing)}"
        click.echo(f"  group       {group.group_id}: {group.n_files} files, {state}")
    else:
        click.echo(
            f"  group       unknown{f' ({r.hdf5_group} not registered)' if r.hdf5_group else ''}"
        )
    if not applied:
        click.echo("  calibration unknown (none recorded as applied)")
    for a in applied:
        retired = " RETIRED" if a.status == "retired" else ""
        click.echo(f"  calibration {a.table_type:<4} {a.set_name}: {a.path}{retired}")
    if not images:
        click.echo("  images      none linked yet")
    for path in images:
        click.echo(f"  image       {path}")


@ms.command("failed")
@click.option("--date", "day", type=DATE, default=None, help="Observation day (UTC).")
@click.option(
    "--json", "as_json", is_flag=True,
    help="A JSON array of objects: path, obs_date, error_class, error.",
)  # fmt: skip
@database_errors("products")
def ms_failed(dbs: Databases, day: dt.date | None, as_json: bool) -> None:
    """The MS directories (of --date) that could not be read, with the reason."""
    with dbs.connect("products") as conn:
        failures = repo.ms_failures(conn, day)
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in failures]))
        return
    if not failures:
        click.echo("no unreadable measurement sets" + (f" on {day.isoformat()}" if day else ""))
        return
    print_table(
        ("MS", "ERROR", "MESSAGE"),
        [(Path(f.path).name, f.error_class, f.error.removeprefix(f.path + ": ")) for f in failures],
    )


@ms.command("scan")
@click.argument(
    "directories", nargs=-1, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@database_errors("products")
def ms_scan(dbs: Databases, directories: tuple[Path, ...]) -> None:
    """Index the new or changed MSs under DIRECTORIES (default: CONTIMG_MS_DIRS).

    As the sensor does; the images of their days are linked. Each unreadable MS is one
    `warning:` line on stderr; exit 0 all the same (`contimg ms failed` lists them).
    """
    from resources.ms.registration import scan_ms  # casacore: on use
    from resources.settings import ms_dirs

    dirs = [d.resolve() for d in directories] or ms_dirs()
    result = scan_ms(dbs.engine("products"), dirs)
    for failure in result.failures:  # the error names the directory
        click.echo(f"warning: {failure.error_class}: {failure.error}", err=True)
    click.echo(result.summary())
    with dbs.connect("products") as conn:
        for day in result.days:
            rows = repo.list_ms(conn, obs_date=day)
            stages = ", ".join(f"{sum(1 for r in rows if r.stage == s)} {s}" for s in MS_STAGES)
            click.echo(f"  {day.isoformat()}: {len(rows)} measurement sets ({stages})")


COMMANDS: list[click.Command] = [ms]
