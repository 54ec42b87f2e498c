"""`contimg db ...`: schema migrations of the five logical databases (thin over migrations.runner).

Every failure ends as one line on stderr and a non-zero exit, never a traceback; URLs and error
texts are masked (`pipeline_defs.cli.output`). docs/ops/database-migrations.md shows what each command prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from alembic.util.exc import CommandError
from sqlalchemy.exc import SQLAlchemyError

from migrations import runner
from pipeline_defs.cli.output import (
    echo_error,
    exit_with,
    fail,
    failure,
    handle_errors,
    print_table,
)
from resources.errors import ContimgError
from resources.secrets import mask_url
from resources.settings import DATABASE_NAMES, database_url

DB_CHOICE = click.Choice(DATABASE_NAMES)

# What a migration can really raise: ours, the driver's, Alembic's, and the file system's.
FAILURES = (ContimgError, SQLAlchemyError, CommandError, OSError)
_handle_errors = handle_errors(*FAILURES)


def _masked_url(name: str) -> str:
    try:
        return mask_url(database_url(name))
    except ContimgError:
        return "-"


def _names(selected: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(selected)) if selected else list(DATABASE_NAMES)


@click.group("db")
def db() -> None:
    """Schema migrations: upgrade, downgrade, status, check, history, revision, restore."""


@db.command("upgrade")
@click.option(
    "--db", "dbs", multiple=True, type=DB_CHOICE, help="Database (repeatable; default all)."
)
@click.option("--to", "target", default="head", show_default=True, help="Target revision.")
@click.option("--no-backup", is_flag=True, help="Skip the SQLite backup taken before migrating.")
@click.option("--dry-run", is_flag=True, help="Print the revisions and SQL; change nothing.")
@click.option(
    "--recreate",
    is_flag=True,
    help="Build an empty schema in a SQLite file that was migrated before and lost its tables "
    "(refused otherwise: restore its backup instead).",
)
def upgrade_cmd(
    dbs: tuple[str, ...], target: str, no_backup: bool, dry_run: bool, recreate: bool
) -> None:
    """Apply pending revisions (default: every database, up to head)."""
    failures: list[str] = []
    for name in _names(dbs):
        try:
            result = runner.upgrade(
                name,
                database_url(name),
                target,
                backup=not no_backup,
                dry_run=dry_run,
                recreate=recreate,
            )
        except FAILURES as exc:
            echo_error(failure(exc).message)
            failures.append(name)
            continue
        click.echo(result.message)
        if dry_run and result.sql:
            click.echo(result.sql.rstrip())
    if failures:
        exit_with(1)


@db.command("downgrade")
@click.option("--db", "name", required=True, type=DB_CHOICE, help="The database.")
@click.option("--to", "target", required=True, help="Revision id, a prefix, -N, or base.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-backup", is_flag=True, help="Skip the SQLite backup taken before migrating.")
@_handle_errors
def downgrade_cmd(name: str, target: str, yes: bool, no_backup: bool) -> None:
    """Undo revisions of one database down to --to (asks first unless --yes)."""
    url = database_url(name)
    preview = runner.downgrade(name, url, target, dry_run=True)
    if not preview.applied:
        click.echo(preview.message)
        return
    if not yes:
        click.echo(
            f"{name} ({preview.url}): downgrade {preview.before} -> {preview.target or 'base'}, "
            f"undoing {', '.join(preview.applied)}. Data only those revisions hold is lost "
            "(see each revision's docstring)."
        )
        if not click.confirm("Proceed?", default=False):
            fail("downgrade aborted; nothing changed")
    result = runner.downgrade(name, url, target, backup=not no_backup)
    click.echo(result.message)


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, one object per database.")
def status_cmd(as_json: bool) -> None:
    """Current revision, head and pending revisions of every database."""
    rows: list[dict[str, Any]] = []
    failed = False
    for name in DATABASE_NAMES:
        try:
            rows.append(runner.status(name, database_url(name)).to_dict())
        except FAILURES as exc:
            failed = True
            rows.append({"database": name, "url": _masked_url(name), "error": failure(exc).message})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table(
            ("DATABASE", "CURRENT", "HEAD", "AT HEAD", "PENDING", "URL"),
            [_status_cells(r) for r in rows],
        )
        for r in rows:
            if "error" in r:
                echo_error(r["error"])
    if failed:
        exit_with(1)


def _status_cells(r: dict[str, Any]) -> tuple[str, ...]:
    if "error" in r:
        return (r["database"], "ERROR", "-", "-", "-", r["url"])
    return (
        r["database"],
        r["current"] or "base",
        r["head"] or "-",
        "yes" if r["at_head"] else "no",
        ",".join(r["pending"]) or "-",
        r["url"],
    )


@db.command("check")
def check_cmd() -> None:
    """Exit 1 when a database is not at head or its models and migrations disagree."""
    problems = 0
    for name in DATABASE_NAMES:
        try:
            state = runner.status(name, database_url(name))
            if not state.at_head:
                problems += 1
                click.echo(
                    f"{name}: NOT AT HEAD (current {state.current or 'base'}, head {state.head}; "
                    f"pending {', '.join(state.pending)}) - run `contimg db upgrade --db {name}`"
                )
                continue
            diffs = runner.check(name, database_url(name))
        except FAILURES as exc:
            problems += 1
            echo_error(failure(exc).message)
            continue
        if diffs:
            problems += 1
            click.echo(f"{name}: DRIFT between the models and the migrations at {state.current}:")
            for line in diffs:
                click.echo(f"  - {line}")
            click.echo(
                f"  fix: `contimg db revision --db {name} -m '...' --autogenerate`, review it, "
                "then upgrade"
            )
        else:
            click.echo(f"{name}: ok (at head {state.head}, models match)")
    if problems:
        echo_error(f"db check found {problems} problem(s)")
        exit_with(1)


@db.command("history")
@click.option("--db", "name", required=True, type=DB_CHOICE, help="The database.")
@_handle_errors
def history_cmd(name: str) -> None:
    """Revisions of one database, oldest first."""
    for info in runner.history(name):
        mark = " (head)" if info.is_head else ""
        click.echo(f"{info.down_revision or 'base'} -> {info.revision}{mark}: {info.message}")


@db.command("revision")
@click.option("--db", "name", required=True, type=DB_CHOICE, help="The database.")
@click.option("-m", "--message", required=True, help="What the revision does.")
@click.option("--autogenerate", is_flag=True, help="Compare the models with the database.")
@_handle_errors
def revision_cmd(name: str, message: str, autogenerate: bool) -> None:
    """Write a new revision script under migrations/<db>/versions/."""
    url = database_url(name) if autogenerate else None
    info = runner.new_revision(name, message, autogenerate, url=url)
    click.echo(f"wrote {info.path} ({info.revision}, revises {info.down_revision or 'base'})")
    click.echo("review it (data backfill? downgrade? docstring on what survives) before upgrading")


@db.command("restore")
@click.option("--db", "name", required=True, type=DB_CHOICE, help="The database.")
@click.option(
    "--from",
    "backup",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A backup written by db upgrade/downgrade.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_handle_errors
def restore_cmd(name: str, backup: Path, yes: bool) -> None:
    """Copy a SQLite backup over the live database (stop sensors and runs first)."""
    url = database_url(name)
    if not yes and not click.confirm(f"Overwrite {name} with {backup}?", default=False):
        fail("restore aborted; nothing changed")
    runner.restore_sqlite_backup(url, backup, name=name)
    state = runner.status(name, url)
    click.echo(f"{name}: restored from {backup}; now at {state.current or 'base'}")


COMMANDS: list[click.Command] = [db]
