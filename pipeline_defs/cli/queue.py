"""`contimg queue`: the ingest queue at a glance, `--failed` (why each file failed), and
`--retry-failed`.

Thin over `resources.repositories.ingest`; errors and exit statuses as docs/catalogue.md says.
Files that failed before a date could be read (not FITS, unreadable header, no DATE-OBS) belong
to no daily partition; `--failed` lists them with the others, their day shown as `no date`.
Files that vanished between their discovery and their processing are `missing`, counted and
listed apart from the failures: they are not retried, and are queued again if they reappear.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from pipeline_defs.cli._catalogue import database_errors, jsonable, vars_of, when
from pipeline_defs.cli.output import DATE, OneLineCommand, OneLineUsageError, print_table
from resources.database import Databases
from resources.repositories import ingest

#: Widest message cell of the `--failed` table, so that a row stays readable in a terminal.
MESSAGE_WIDTH = 70


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
@click.option(
    "--failed",
    "list_failed",
    is_flag=True,
    help="List the failed files (day, file, error class, message), newest failure first; files "
    "that failed before a date could be read show `no date`.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="JSON: with --failed one object per failed row per line, else one summary object.",
)
@click.option("--retry-failed", is_flag=True, help="Move failed rows back to pending.")
@click.option("--date", "obs_date", type=DATE, help="With --failed or --retry-failed: one day.")
@click.option("--yes", is_flag=True, help="Do not ask before --retry-failed.")
@database_errors("ingest")
def queue(
    dbs: Databases,
    stuck_minutes: int | None,
    limit: int,
    list_failed: bool,
    as_json: bool,
    retry_failed: bool,
    obs_date: dt.date | None,
    yes: bool,
) -> None:
    """The ingest queue: counts by state, oldest pending, stuck and failed rows."""
    if retry_failed and (list_failed or as_json):
        raise OneLineUsageError("--retry-failed cannot be combined with --failed or --json")
    if list_failed:
        _print_failed(dbs, obs_date, limit, as_json)
        return
    after = dt.timedelta(minutes=stuck_minutes) if stuck_minutes is not None else None
    with dbs.connect("ingest") as conn:
        summary = ingest.summary(conn, stuck_after=after, limit=limit)
        undated = len(ingest.failed_without_date(conn))
    if as_json:
        click.echo(json.dumps(_summary_json(summary, undated)))
        return
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
    before_date = f" ({undated} before a date could be read)" if undated else ""
    click.echo(
        f"failed: {n_failed}{before_date}"
        + ("; details: `contimg queue --failed`" if n_failed else "")
    )
    for row in summary.failed:
        click.echo(
            f"  {row.path}  {row.error_class or '-'}: {row.short_error()} (attempts {row.attempts})"
        )
    n_missing = summary.counts.get(ingest.MISSING, 0)
    click.echo(
        f"missing: {n_missing}"
        + (
            "; vanished before processing, not retried, queued again if they reappear"
            if n_missing
            else ""
        )
    )
    for row in summary.missing:
        click.echo(f"  {row.path}  since {when(row.updated_at)} UTC")
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


def _failed_json(row: ingest.QueueRow) -> dict[str, Any]:
    return jsonable(
        {
            "path": row.path,
            "name": row.name,
            "obs_date": row.obs_date,
            "error_class": row.error_class,
            "message": row.short_error(),
            "attempts": row.attempts,
            "failed_at": row.updated_at,
        }
    )


def _summary_json(summary: ingest.QueueSummary, undated: int) -> dict[str, Any]:
    return {
        "counts": summary.counts,
        "failed_without_date": undated,
        "stuck_after_minutes": int(summary.stuck_after.total_seconds() // 60),
        "oldest_pending": (
            jsonable(vars_of(summary.oldest_pending)) if summary.oldest_pending else None
        ),
        "stuck": [jsonable(vars_of(r)) for r in summary.stuck],
        "failed": [_failed_json(r) for r in summary.failed],
        "missing": [
            jsonable({"path": r.path, "obs_date": r.obs_date, "since": r.updated_at})
            for r in summary.missing
        ],
    }


def _print_failed(dbs: Databases, obs_date: dt.date | None, limit: int, as_json: bool) -> None:
    """The failed rows as a table (or JSON lines), `--limit` of them, newest failure first."""
    with dbs.connect("ingest") as conn:
        rows = ingest.failed_rows(conn, obs_date=obs_date, limit=limit)
        total = ingest.counts(conn, obs_date=obs_date)["failed"]
    if not rows:
        click.echo("no failed files" + (f" of {obs_date}" if obs_date else ""), err=as_json)
        return
    if as_json:
        for row in rows:
            click.echo(json.dumps(_failed_json(row)))
    else:
        print_table(
            ("DAY", "FILE", "ERROR", "MESSAGE"),
            [
                (
                    row.obs_date.isoformat() if row.obs_date else "no date",
                    row.name,
                    row.error_class or "-",
                    _clip(row.short_error(), MESSAGE_WIDTH),
                )
                for row in rows
            ],
        )
    if total > len(rows):
        click.echo(f"({len(rows)} of {total} shown; use --limit)", err=True)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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
