"""`contimg cal applylist`: which calibration tables apply at an MJD, in apply order.

Thin over `resources.repositories.cal_registry`; errors and exit statuses as docs/catalogue.md
says.
"""

from __future__ import annotations

import json
import math

import click

from pipeline_defs.cli._catalogue import database_errors, jsonable, vars_of
from pipeline_defs.cli.output import OneLineGroup, print_table
from resources.database import Databases
from resources.repositories import cal_registry


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


COMMANDS: list[click.Command] = [cal]
