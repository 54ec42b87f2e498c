"""`contimg stats`: per-day statistics of the catalogue (images, grades, rms, dynamic range).

Thin over `resources.repositories.products.daily_stats`; errors and exit statuses as
docs/catalogue.md says.
"""

from __future__ import annotations

import datetime as dt
import json

import click

from pipeline_defs.cli._catalogue import database_errors, num
from pipeline_defs.cli.output import DATE, OneLineCommand, print_table
from resources.database import Databases
from resources.repositories.products import daily_stats


@click.command("stats", cls=OneLineCommand)
@click.option("--from", "date_from", type=DATE, help="First UTC day (inclusive).")
@click.option("--to", "date_to", type=DATE, help="Last UTC day (inclusive).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per day.")
@database_errors("products")
def stats_cmd(
    dbs: Databases, date_from: dt.date | None, date_to: dt.date | None, as_json: bool
) -> None:
    """Per-day statistics: images, grades, failed parses, rms and dynamic range."""
    if date_from and date_to and date_from > date_to:
        raise click.BadParameter(
            f"--from {date_from} is after --to {date_to}", param_hint="'--from'"
        )
    with dbs.connect("products") as conn:
        rows = daily_stats(conn, date_from, date_to)
    if not rows:
        click.echo("no daily statistics in that range", err=as_json)
        return
    if as_json:
        for r in rows:
            click.echo(json.dumps(r.to_json_dict()))
        return
    print_table(
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
                num(r.rms_median_jy * 1e3 if r.rms_median_jy is not None else None, ".3f"),
                num(r.rms_p95_jy * 1e3 if r.rms_p95_jy is not None else None, ".3f"),
                num(r.dr_median, ".0f"),
            )
            for r in rows
        ],
    )


COMMANDS: list[click.Command] = [stats_cmd]
