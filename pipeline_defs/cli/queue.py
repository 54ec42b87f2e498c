"""`contimg queue`: the ingest queue at a glance, and `--retry-failed`.

Thin over `resources.repositories.ingest`; errors and exit statuses as docs/catalogue.md says.
"""

from __future__ import annotations

import datetime as dt

import click

from pipeline_defs.cli._catalogue import database_errors, when
from pipeline_defs.cli.output import DATE, OneLineCommand, print_table
from resources.database import Databases
from resources.repositories import ingest


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
@database_errors("ingest")
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
    print_table(("STATE", "ROWS"), [(s, str(n)) for s, n in summary.counts.items()])
    now = dt.datetime.now(dt.UTC)
    op = summary.oldest_pending
    if op is None:
        click.echo("oldest pending: none")
    else:
        age = _age(now, op.discovered_at)
        click.echo(
            f"oldest pending: {op.path} (discovered {when(op.discovered_at)} UTC, {age} ago)"
        )
    minutes = int(summary.stuck_after.total_seconds() // 60)
    click.echo(
        f"stuck (in_progress > {minutes} min): {len(summary.stuck)}"
        + (" (first shown)" if len(summary.stuck) == limit else "")
    )
    for row in summary.stuck:
        click.echo(
            f"  {row.path}  claimed {when(row.claimed_at)} by {row.claimed_by or '-'} "
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


COMMANDS: list[click.Command] = [queue]
