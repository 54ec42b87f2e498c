"""`contimg sources list|show|lightcurve`: the sky-source catalogue (docs/sources.md).

Thin over `resources.repositories.products`. Names and units are VAST's source and
measurement tables' (positions and their uncertainties in degrees, fluxes in mJy), in `--json`
and `--csv` alike. Errors and exit statuses as every catalogue command's
(`pipeline_defs.cli._catalogue`): bad input exits 2 with one line; an unknown source id, an
unreadable or unmigrated database, a plot that cannot be written exit 1 with one line; an empty
result exits 0. Read-only: the database is opened only when its file exists.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from pipeline_defs.cli._catalogue import DEC, RA, csv_value, database_errors, num
from pipeline_defs.cli.output import DATE, OneLineGroup, fail, format_table, print_table
from resources.database import Databases
from resources.repositories.products import (
    LIGHT_CURVE_FIELDS,
    SOURCE_FIELDS,
    SOURCE_SORT_KEYS,
    SourceFilter,
    get_source,
    light_curves_with_images,
    list_sources,
    sources_near,
)
from resources.repositories.sky import Cone

DEFAULT_LIMIT = 50
DEFAULT_RADIUS_ARCSEC = 10.0

#: `sources lightcurve --csv`: one row per measurement, its source named.
NEAR_CSV_FIELDS: tuple[str, ...] = (
    "source_id",
    "name",
    "separation_arcsec",
    *LIGHT_CURVE_FIELDS[1:],
)


# --- parameter types --------------------------------------------------------------------------


class Number(click.ParamType):
    """A finite number, optionally within [low, high] (`what` and `unit` name it in errors)."""

    def __init__(
        self, what: str, *, unit: str = "", low: float | None = None, high: float | None = None
    ) -> None:
        self.what, self.unit, self.low, self.high = what, unit, low, high
        self.name = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        unit = f" {self.unit}" if self.unit else ""
        if not math.isfinite(number):
            self.fail(f"{self.what} {value} is not a finite number", param, ctx)
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            self.fail(
                f"{self.what} {value} is outside [{self.low:g}, {self.high:g}]{unit}", param, ctx
            )
        return number


RADIUS_DEG = Number("radius", unit="degrees", low=0.0, high=180.0)
RADIUS_ARCSEC = Number("radius", unit="arcsec", low=0.0, high=180.0 * 3600.0)
FINITE = Number("threshold")


def _output_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise click.UsageError("--json and --csv are exclusive")


def _cone(ra: float | None, dec: float | None, radius: float | None) -> Cone | None:
    given = {"--ra": ra, "--dec": dec, "--radius": radius}
    if all(v is None for v in given.values()):
        return None
    missing = [name for name, v in given.items() if v is None]
    if missing:
        raise click.UsageError(
            f"a cone needs --ra, --dec and --radius: {' and '.join(missing)} missing"
        )
    assert ra is not None and dec is not None and radius is not None
    return Cone(ra, dec, radius)


# --- cells and values -------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """JSON has no NaN nor dates: a non-finite number is null, a date its ISO 8601 string."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _json_row(row: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {name: _json_value(row[name]) for name in fields}


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return csv_value(value)


def _csv(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_csv_cell(row[name]) for name in fields])


def _day(value: dt.date | None) -> str:
    return value.isoformat() if value is not None else "-"


def _source_cells(s: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(s["id"]),
        s["name"],
        num(s["wavg_ra"], ".5f"),
        num(s["wavg_dec"], "+.5f"),
        num(s["avg_flux_int"], ".3f"),
        num(s["max_flux_peak"], ".3f"),
        num(s["max_snr"], ".1f"),
        str(s["n_meas"]),
        str(s["n_meas_forced"]),
        num(s["v_int"], ".3f"),
        num(s["eta_int"], ".2f"),
        "yes" if s["new"] else "-",
        _day(s["first_obs_date"]),
    )


SOURCE_HEADER = (
    "ID",
    "NAME",
    "RA",
    "DEC",
    "FLUX_INT mJy",
    "MAX_PEAK mJy",
    "MAX_SNR",
    "N_MEAS",
    "FORCED",
    "V_INT",
    "ETA_INT",
    "NEW",
    "FIRST",
)
SOURCE_ALIGN = "><>>>>>>>>><<"

LIGHT_CURVE_HEADER = (
    "OBS_DATE",
    "MJD",
    "KIND",
    "FLUX_INT mJy",
    "ERR",
    "FLUX_PEAK mJy",
    "ERR",
    "RMS",
    "SNR",
    "ASSOC",
    "IMAGE",
)
LIGHT_CURVE_ALIGN = "<><>>>>>><<"


def _light_curve_cells(m: dict[str, Any]) -> tuple[str, ...]:
    return (
        _day(m["obs_date"]),
        num(m["mjd"], ".5f"),
        "forced" if m["forced"] else "blind",
        num(m["flux_int"], ".3f"),
        num(m["flux_int_err"], ".3f"),
        num(m["flux_peak"], ".3f"),
        num(m["flux_peak_err"], ".3f"),
        num(m["local_rms"], ".3f"),
        num(m["snr"], ".1f"),
        m["association"] or "-",
        m["image_path"],
    )


def _print_light_curve(rows: Sequence[dict[str, Any]], indent: str = "  ") -> None:
    if not rows:
        click.echo(f"{indent}no measurements")
        return
    for line in format_table(
        LIGHT_CURVE_HEADER, [_light_curve_cells(m) for m in rows], align=LIGHT_CURVE_ALIGN
    ):
        click.echo(f"{indent}{line}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --- commands ---------------------------------------------------------------------------------


@click.group("sources", cls=OneLineGroup)
def sources() -> None:
    """Sky sources: cone/variability lists, one source's light curve, light curves at a position."""


@sources.command("list")
@click.option("--ra", type=RA, help="Cone centre: RA, degrees [0, 360) (with --dec, --radius).")
@click.option("--dec", type=DEC, help="Cone centre: Dec, degrees [-90, 90].")
@click.option("--radius", type=RADIUS_DEG, metavar="DEG", help="Cone radius, degrees [0, 180].")
@click.option("--min-eta", type=FINITE, metavar="X", help="Only sources with eta_int >= X.")
@click.option("--min-v", type=FINITE, metavar="X", help="Only sources with v_int >= X.")
@click.option(
    "--new",
    "new_only",
    is_flag=True,
    help="Only new sources: first detected where earlier images could have seen them.",
)
@click.option(
    "--date",
    "first_date",
    type=DATE,
    help="Only sources first detected on this UTC day (first_obs_date).",
)
@click.option(
    "--sort",
    type=click.Choice(SOURCE_SORT_KEYS),
    default="eta",
    show_default=True,
    help="eta_int, v_int or avg_flux_int, largest first (unknown last); or id, ascending.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="At most this many sources (0: no limit).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array of objects with VAST's source columns (degrees, mJy).",
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row: the --json columns.")
@database_errors("products")
def sources_list(
    dbs: Databases,
    ra: float | None,
    dec: float | None,
    radius: float | None,
    min_eta: float | None,
    min_v: float | None,
    new_only: bool,
    first_date: dt.date | None,
    sort: str,
    limit: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List sky sources matching every given filter, sorted (default: by eta_int)."""
    _output_format(as_json, as_csv)
    flt = SourceFilter(
        cone=_cone(ra, dec, radius),
        min_eta=min_eta,
        min_v=min_v,
        new_only=new_only,
        first_obs_date=first_date,
        sort=sort,
        limit=limit or None,
    ).validate()
    with dbs.connect("products") as conn:
        rows, more = list_sources(conn, flt)
    hint = "more match: raise --limit (0: no limit)" if more else ""
    if as_json:
        click.echo(json.dumps([_json_row(r, SOURCE_FIELDS) for r in rows]))
    elif as_csv:
        _csv(SOURCE_FIELDS, rows)
    if not rows:
        click.echo("no sources match", err=as_json or as_csv)
    elif as_json or as_csv:
        if hint:
            click.echo(f"({len(rows)} shown; {hint})", err=True)
    else:
        print_table(SOURCE_HEADER, [_source_cells(r) for r in rows], align=SOURCE_ALIGN)
        key = {"eta": "eta_int", "v": "v_int", "flux": "avg_flux_int", "id": "id"}[sort]
        click.echo(
            f"{_plural(len(rows), 'source')}, sorted by {key}" + (f"; {hint}" if hint else "")
        )


@sources.command("show")
@click.argument("source_id", metavar="ID", type=click.IntRange(min=0))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: source (the `list --json` columns) and light_curve (measurements).",
)
@click.option(
    "--csv", "as_csv", is_flag=True, help="The light curve as CSV, one row per measurement."
)
@click.option(
    "--png",
    "png",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Also write a PNG plot of the light curve (flux_int against time) to FILE.",
)
@database_errors("products")
def sources_show(
    dbs: Databases, source_id: int, as_json: bool, as_csv: bool, png: Path | None
) -> None:
    """One sky source (ID, as `sources list` shows it) and its light curve.

    The light curve has one row per measurement, blind or forced, in time order: day, MJD,
    fluxes and errors (mJy), local rms, SNR, association kind and the image it was measured on.
    """
    _output_format(as_json, as_csv)
    with dbs.connect("products") as conn:
        source = get_source(conn, source_id)
        if source is None:
            fail(f"no source with id {source_id} in the catalogue")
        curve = light_curves_with_images(conn, [source_id])[source_id]
    if png is not None:  # before any output: a plot that cannot be written leaves nothing
        _write_plot(png, source, curve)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "source": _json_row(source, SOURCE_FIELDS),
                    "light_curve": [_json_row(m, LIGHT_CURVE_FIELDS) for m in curve],
                }
            )
        )
    elif as_csv:
        _csv(LIGHT_CURVE_FIELDS, curve)
    else:
        _print_source(source)
        click.echo(f"light curve ({_plural(len(curve), 'measurement')})")
        _print_light_curve(curve)
    if png is not None:
        click.echo(f"wrote the light curve plot to {png}", err=as_json or as_csv)


def _write_plot(path: Path, source: dict[str, Any], curve: Sequence[dict[str, Any]]) -> None:
    from assets.sources.plots import light_curve_plot  # PIL: only when a plot is asked for

    points = [
        (float(m["mjd"]), float(m["flux_int"]), bool(m["forced"]))
        for m in curve
        if m["mjd"] is not None and m["flux_int"] is not None and math.isfinite(m["flux_int"])
    ]
    data = light_curve_plot(points, title=f"{source['name']} (id {source['id']}): flux_int")
    try:
        with path.open("wb") as handle:
            try:
                handle.write(data)
            except OSError:
                handle.close()
                path.unlink(missing_ok=True)  # no half-written PNG left behind
                raise
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or type(exc).__name__}")


def _print_source(s: dict[str, Any]) -> None:
    arcsec = 3600.0

    def err(value: float | None) -> str:
        return num(value * arcsec if value is not None else None, ".2f")

    click.echo(f"{s['name']} (id {s['id']})")
    click.echo(
        f"  position     RA {num(s['wavg_ra'], '.6f')} deg, Dec {num(s['wavg_dec'], '+.6f')} deg "
        f"(uncertainty EW {err(s['wavg_uncertainty_ew'])}, NS {err(s['wavg_uncertainty_ns'])} "
        "arcsec)"
    )
    click.echo(
        f"  flux_int     mean {num(s['avg_flux_int'], '.3f')} mJy, "
        f"min {num(s['min_flux_int'], '.3f')}, max {num(s['max_flux_int'], '.3f')}"
    )
    click.echo(
        f"  flux_peak    mean {num(s['avg_flux_peak'], '.3f')} mJy/beam, "
        f"min {num(s['min_flux_peak'], '.3f')}, max {num(s['max_flux_peak'], '.3f')}"
    )
    click.echo(f"  snr          min {num(s['min_snr'], '.1f')}, max {num(s['max_snr'], '.1f')}")
    click.echo(
        f"  measured     {s['n_meas']} times ({s['n_meas_forced']} forced), "
        f"{_plural(s['n_rel'], 'relation')}; first {_day(s['first_obs_date'])} "
        f"(MJD {num(s['first_mjd'], '.5f')}), last MJD {num(s['last_mjd'], '.5f')}"
    )
    click.echo(
        f"  variability  V {num(s['v_int'], '.3f')} int, {num(s['v_peak'], '.3f')} peak; "
        f"eta {num(s['eta_int'], '.2f')} int, {num(s['eta_peak'], '.2f')} peak"
    )
    click.echo(
        f"  two-epoch    |Vs| {num(s['vs_abs_significant_max_int'], '.2f')}, "
        f"|m| {num(s['m_abs_significant_max_int'], '.3f')} int; "
        f"|Vs| {num(s['vs_abs_significant_max_peak'], '.2f')}, "
        f"|m| {num(s['m_abs_significant_max_peak'], '.3f')} peak"
    )
    if s["new"]:
        click.echo(f"  new          yes ({num(s['new_high_sigma'], '.1f')} sigma)")
    else:
        click.echo("  new          no")


@sources.command("lightcurve")
@click.option("--ra", type=RA, required=True, help="RA of the position, degrees [0, 360).")
@click.option("--dec", type=DEC, required=True, help="Dec of the position, degrees [-90, 90].")
@click.option(
    "--radius",
    type=RADIUS_ARCSEC,
    metavar="ARCSEC",
    default=DEFAULT_RADIUS_ARCSEC,
    show_default=True,
    help="Search radius about the position, arcsec.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array, nearest first: each source's columns, separation_arcsec, light_curve.",
)
@click.option(
    "--csv",
    "as_csv",
    is_flag=True,
    help="CSV, one row per measurement: source_id, name, separation_arcsec, the measurement.",
)
@database_errors("products")
def sources_lightcurve(
    dbs: Databases, ra: float, dec: float, radius: float, as_json: bool, as_csv: bool
) -> None:
    """The light curves of every sky source within --radius of (--ra, --dec), nearest first."""
    _output_format(as_json, as_csv)
    with dbs.connect("products") as conn:
        near = sources_near(conn, ra, dec, radius / 3600.0)
        curves = light_curves_with_images(conn, [s["id"] for _, s in near])
    where = f"{radius:g} arcsec of RA {ra:g}, Dec {dec:+g}"
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        **_json_row(s, SOURCE_FIELDS),
                        "separation_arcsec": sep * 3600.0,
                        "light_curve": [_json_row(m, LIGHT_CURVE_FIELDS) for m in curves[s["id"]]],
                    }
                    for sep, s in near
                ]
            )
        )
    elif as_csv:
        _csv(
            NEAR_CSV_FIELDS,
            [
                {**m, "name": s["name"], "separation_arcsec": sep * 3600.0}
                for sep, s in near
                for m in curves[s["id"]]
            ],
        )
    if not near:
        click.echo(f"no sources within {where}", err=as_json or as_csv)
        return
    if as_json or as_csv:
        return
    for i, (sep, s) in enumerate(near):
        if i:
            click.echo("")
        click.echo(
            f"{s['name']} (id {s['id']})  {sep * 3600.0:.2f} arcsec away  "
            f"RA {num(s['wavg_ra'], '.6f')}  Dec {num(s['wavg_dec'], '+.6f')}  "
            f"eta_int {num(s['eta_int'], '.2f')}  v_int {num(s['v_int'], '.3f')}"
        )
        _print_light_curve(curves[s["id"]])
    click.echo(f"{_plural(len(near), 'source')} within {where}")


COMMANDS: list[click.Command] = [sources]
