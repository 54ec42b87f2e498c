"""`contimg health [--json]`: is every logical database reachable, how fast, how busy is its pool.

All databases are probed concurrently, each under the health timeout
(`CONTIMG_DB_HEALTH_TIMEOUT`, default 5 s), so one hung server cannot stall the report. URLs are
printed with their password masked. Read-only: a SQLite file that does not exist is reported
DOWN, not created.

Exit status (`EXIT_STATUSES`, also in `--help` and docs/ops/health-checks.md): 0 every database
is reachable and at head; 1 some database is unreachable, missing, behind head, or its revision
could not be read, or DAGSTER_HOME cannot be written (one line naming it); 2 a setting is
malformed (e.g. a database URL).

The default command also reads each database's schema revision against the migrations' head
(`schema_probe`, through `migrations.runner.connection_status`) on the probe's connection, inside
the same timeout, and sets `contimg_db_schema_at_head`. Other columns: build the command with
`make_health_command(probe=..., columns=[...])`; the probe's returned mapping lands in
`HealthResult.extra`, which the columns (and `--json`) read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click
from sqlalchemy.engine import Connection

from pipeline_defs.cli.output import USAGE_STATUS, exit_with, fail, format_table
from pipeline_defs.instance import dagster_home_problem
from resources import metrics
from resources.database import Databases, HealthProbe, HealthResult
from resources.errors import ConfigurationError


@dataclass(frozen=True)
class HealthColumn:
    """An extra table column: a header and how to render it from one result."""

    header: str
    render: Callable[[HealthResult], str]


#: STATUS for failures that are not "the server is down": the file is missing, damaged, full.
_FAILURE_STATUS = {
    "DatabaseNotMigratedError": "MISSING",
    "DatabaseDamagedError": "DAMAGED",
    "DatabaseFullError": "FULL",
}


def _status(result: HealthResult) -> str:
    if result.ok:
        return "up"
    return _FAILURE_STATUS.get(result.error_class or "", "DOWN")


def _latency(result: HealthResult) -> str:
    return "-" if result.latency_s is None else f"{result.latency_s * 1000:.1f} ms"


def _pool(result: HealthResult) -> str:
    p = result.pool
    return f"{p.checked_out}/{p.size}+{p.overflow}"


BASE_COLUMNS: tuple[HealthColumn, ...] = (
    HealthColumn("DATABASE", lambda r: r.database),
    HealthColumn("STATUS", lambda r: _status(r)),
    HealthColumn("LATENCY", _latency),
    HealthColumn("POOL out/size+ovf", _pool),
    HealthColumn("EXHAUSTED", lambda r: str(r.pool.exhausted_total)),
    HealthColumn("CONN ERRS", lambda r: str(r.pool.connection_errors_total)),
    HealthColumn("URL", lambda r: r.masked_url),
)


def schema_probe(name: str, conn: Connection) -> dict[str, object]:
    """Revision vs head of one database, read on the health probe's own connection."""
    from migrations.runner import connection_status  # Alembic is only needed here

    status = connection_status(name, conn)
    metrics.DB_SCHEMA_AT_HEAD.labels(database=name).set(1 if status.at_head else 0)
    return {
        "revision": status.current,
        "head": status.head,
        "at_head": status.at_head,
        "pending": len(status.pending),
    }


SCHEMA_COLUMNS: tuple[HealthColumn, ...] = (
    HealthColumn("REVISION", lambda r: str(r.extra.get("revision") or "-")),
    HealthColumn("HEAD", lambda r: str(r.extra.get("head") or "-")),
    HealthColumn(
        "AT HEAD",
        lambda r: "-" if "at_head" not in r.extra else ("yes" if r.extra["at_head"] else "NO"),
    ),
)


def render_table(results: Sequence[HealthResult], columns: Sequence[HealthColumn] = ()) -> str:
    """A plain-text table, then one line per failure with its (masked) error."""
    cols = (*BASE_COLUMNS, *columns)
    lines = format_table([c.header for c in cols], [[c.render(r) for c in cols] for r in results])
    for r in results:
        if not r.ok:
            message = " ".join((r.error_message or "").split())  # one line per database
            lines.append(f"{r.database}: {r.error_class}: {message}")
        if r.probe_error:
            lines.append(f"{r.database}: probe: {r.probe_error}")
        elif r.ok and r.extra.get("at_head") is False:
            lines.append(
                f"{r.database}: behind head {r.extra.get('head')} "
                f"(at {r.extra.get('revision') or 'base'}): run `contimg db upgrade`"
            )
    return "\n".join(lines)


EXIT_STATUSES = (
    "Exit status: 0 every database reachable and at head; 1 a database unreachable, missing, "
    "behind head or with an unreadable revision, or DAGSTER_HOME not writable; 2 a malformed "
    "setting."
)


def run_health(
    databases: Databases, *, probe: HealthProbe | None = None, timeout: float | None = None
) -> list[HealthResult]:
    """Probe every database without creating missing SQLite files (the command only reads)."""
    return list(databases.health_all(probe=probe, timeout=timeout, create_missing=False).values())


def healthy(result: HealthResult) -> bool:
    """Reachable, its probe answered, and (when the probe reads it) its schema at head."""
    return result.ok and not result.probe_error and result.extra.get("at_head", True) is True


def make_health_command(
    *, probe: HealthProbe | None = None, columns: Sequence[HealthColumn] = ()
) -> click.Command:
    """The `health` command, optionally with an extra per-database probe and table columns."""

    @click.command("health", epilog=EXIT_STATUSES)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
    @click.option(
        "--timeout",
        type=float,
        default=None,
        help="Seconds per database (default: CONTIMG_DB_HEALTH_TIMEOUT, 5).",
    )
    def health(as_json: bool, timeout: float | None) -> None:
        """Reachability, latency, pool and schema state of every database (exit 1 if any is down or behind head)."""
        try:
            databases = Databases.from_env()
        except ConfigurationError as exc:
            fail(exc, USAGE_STATUS)
        results = run_health(databases, probe=probe, timeout=timeout)
        # Every run writes to DAGSTER_HOME; unwritable, it fails in Dagster's storage with an
        # error that names no directory, so the health check names it.
        home_problem = dagster_home_problem()
        ok = all(healthy(r) for r in results) and home_problem is None
        if as_json:
            payload = {
                "ok": ok,
                "databases": [r.to_dict() for r in results],
                "dagster_home": home_problem or "writable",
            }
            click.echo(databases.mask(json.dumps(payload, indent=2, default=str)))
        else:
            click.echo(databases.mask(render_table(results, columns)))
            if home_problem is not None:
                click.echo(home_problem)
        exit_with(0 if ok else 1)

    return health


COMMANDS: list[click.Command] = [make_health_command(probe=schema_probe, columns=SCHEMA_COLUMNS)]
