"""`contimg images list` and `contimg images show`: browse the image catalogue.

Thin over `resources.repositories.products`; errors and exit statuses as docs/catalogue.md says
(one line, 2 for bad input, 1 for an unreadable database or an unknown image), made by
`pipeline_defs.cli.output` and `pipeline_defs.cli._catalogue`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys
from collections.abc import Sequence

import click
from sqlalchemy.exc import SQLAlchemyError

from assets.ms.lineage import Lineage, image_lineage
from pipeline_defs.cli._catalogue import (
    DEC,
    RA,
    csv_value,
    database_errors,
    jsonable,
    num,
    vars_of,
    when,
)
from pipeline_defs.cli.output import DATE, OneLineGroup, fail, print_table
from resources.database import Databases
from resources.errors import ContimgError
from resources.repositories import data_registry, ingest
from resources.repositories.products import (
    GRADE_CHOICES,
    SORT_KEYS,
    SUMMARY_FIELDS,
    ImageFilter,
    ImageSummary,
    get_image,
    list_images,
)
from resources.repositories.sky import Cone

DEFAULT_LIMIT = 100


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


# --- commands ---------------------------------------------------------------------------------


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
@database_errors("products")
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
            writer.writerow([csv_value(getattr(row, name)) for name in SUMMARY_FIELDS])
    elif rows:
        print_table(
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
        when(r.date_obs),
        num(r.ra_deg, ".4f"),
        num(r.dec_deg, "+.4f"),
        r.grade or "-",
        num(r.rms_jy * 1e3 if r.rms_jy is not None else None, ".3f"),
        num(r.dynamic_range, ".0f"),
        r.telescope or "-",
        r.path,
    )


@images.command("show")
@click.argument("path_or_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@database_errors("products")
def images_show(dbs: Databases, path_or_id: str, as_json: bool) -> None:
    """Everything known about one image: metadata, QA, thumbnail, registry, ingest history.

    PATH_OR_ID is the image's file path, as catalogued, or its numeric id (`images list`).
    """
    with dbs.connect("products") as conn:
        detail = get_image(conn, path_or_id)
    if detail is None:
        fail(f"no image with path or id {path_or_id!r} in the catalogue")
    products = _products_of(dbs, detail.path)
    queue_row = _ingest_of(dbs, detail.path)
    lineage = _lineage_of(dbs, detail.image.get("ms_id"))
    if as_json:
        out = detail.to_json_dict()
        out["lineage"] = lineage.to_dict()
        out["registry"] = [jsonable(vars_of(p)) for p in products]
        out["ingest"] = jsonable(vars_of(queue_row)) if queue_row is not None else None
        click.echo(json.dumps(out))
        return
    m = detail.image
    click.echo(m["path"])
    click.echo(f"  id         {m['id']}")
    click.echo(
        f"  observed   {when(m['date_obs'])} UTC (MJD {num(m['mjd_obs'], '.6f')}), "
        f"day {m['obs_date'] or '-'}"
    )
    click.echo(
        f"  centre     RA {num(m['ra_deg'], '.6f')} deg, Dec {num(m['dec_deg'], '+.6f')} deg"
    )
    axes = "x".join(str(n) for n in m["naxis"] or [])
    click.echo(
        f"  image      {m['width']} x {m['height']} px (axes {axes}), BITPIX {m['bitpix']}, "
        f"HDU {m['hdu_index']}, {m['size_bytes']:,} bytes"
    )
    freq = m["freq_hz"] / 1e6 if m["freq_hz"] is not None else None
    bw = m["bandwidth_hz"] / 1e6 if m["bandwidth_hz"] is not None else None
    click.echo(
        f"  frequency  {num(freq, '.3f')} MHz, bandwidth {num(bw, '.3f')} MHz, "
        f"Stokes {m['stokes'] or '-'}"
    )
    click.echo(
        f"  beam       {num(m['beam_major_arcsec'], '.2f')} x "
        f"{num(m['beam_minor_arcsec'], '.2f')} arcsec, PA {num(m['beam_pa_deg'], '.1f')} deg"
    )
    click.echo(
        f"  telescope  {m['telescope'] or '-'}; object {m['object'] or '-'}; "
        f"cell {num(m['cellsize_arcsec'], '.3f')} arcsec"
    )
    for warning in m["warnings"] or []:
        click.echo(f"  warning    {warning}")
    qa = detail.qa
    if qa is None:
        click.echo("  QA         not graded yet")
    else:
        rms = qa.rms_jy * 1e3 if qa.rms_jy is not None else None
        click.echo(
            f"  QA         {qa.grade.upper()}: rms {num(rms, '.3f')} mJy/beam, "
            f"peak {num(qa.peak_jy, '.4g')} Jy/beam, DR {num(qa.dynamic_range, '.1f')}, "
            f"NaN {num(qa.nan_fraction, '.1%')} (graded {when(qa.computed_at)})"
        )
        for reason in qa.reasons:
            click.echo(f"    reason   {reason}")
    thumb = detail.thumbnail
    click.echo(
        f"  thumbnail  {thumb.path} ({thumb.width} x {thumb.height})"
        if thumb
        else "  thumbnail  none yet"
    )
    for line in lineage.lines():
        click.echo(f"  lineage    {line}")
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
            f"  ingest     {q.state}, {q.attempts} attempt(s); discovered {when(q.discovered_at)}, "
            f"claimed {when(q.claimed_at)} by {q.claimed_by or '-'}, "
            f"completed {when(q.completed_at)}"
        )
        if q.last_error:
            click.echo(f"    error    {q.error_class or '-'}: {q.last_error.splitlines()[0]}")


def _products_of(dbs: Databases, path: str) -> list[data_registry.ProductRow]:
    try:
        with dbs.connect("data_registry") as conn:
            return data_registry.products_of_image(conn, path)
    except SQLAlchemyError as exc:
        click.echo(dbs.mask(f"warning: data_registry unreadable: {type(exc).__name__}"), err=True)
        return []


def _lineage_of(dbs: Databases, ms_id: int | None) -> Lineage:
    """image → MS → subband group → calibration; a database that cannot be read leaves its
    links unknown, with one warning line (the image's own record still prints)."""
    try:
        return image_lineage(dbs, ms_id)
    except (SQLAlchemyError, ContimgError) as exc:
        reason = str(exc).splitlines()[0] if isinstance(exc, ContimgError) else type(exc).__name__
        click.echo(dbs.mask(f"warning: lineage incomplete: {reason}"), err=True)
        return Lineage()


def _ingest_of(dbs: Databases, path: str) -> ingest.QueueRow | None:
    try:
        with dbs.connect("ingest") as conn:
            return ingest.history(conn, path)
    except SQLAlchemyError as exc:
        click.echo(dbs.mask(f"warning: ingest unreadable: {type(exc).__name__}"), err=True)
        return None


COMMANDS: list[click.Command] = [images]
