"""Database health as the sensor and the `database_status` job see it (plain code, no Dagster).

One tick probes every logical database concurrently (`Databases.health_all`), and inside each
probe's own timeout also reads the schema revision on the same connection (`runner
.connection_status`, the code `contimg db status` uses), so a database that answers `SELECT 1` but
hangs on its version table still costs one timeout, not a stalled tick.

The sensor keeps what it last saw in its cursor (`MonitorState`, JSON) so that it can log one
message per healthy/unhealthy transition instead of one per tick, and request at most one
`migrate_databases` run per set of pending revisions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from migrations import runner
from resources import metrics
from resources.database import Databases, HealthProbe, HealthResult, PoolStatus
from resources.engines import sqlite_path
from resources.errors import ContimgError, DatabaseError

CURSOR_VERSION = 1
#: How many requested pending-set keys the cursor remembers (oldest dropped first).
REMEMBERED_REQUESTS = 50


# --- one database's health -----------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseHealth:
    """Reachability and schema state of one logical database at one tick (messages masked)."""

    database: str
    masked_url: str
    reachable: bool
    cause: str | None  # why it is unhealthy, one line; None when healthy
    latency_s: float | None
    current: str | None
    head: str | None
    pending: tuple[str, ...]
    at_head: bool | None  # None when the revision could not be read
    pool: PoolStatus | None

    @property
    def healthy(self) -> bool:
        """Reachable and its revision readable; pending migrations are reported separately."""
        return self.cause is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "url": self.masked_url,
            "healthy": self.healthy,
            "reachable": self.reachable,
            "cause": self.cause,
            "latency_s": self.latency_s,
            "current": self.current,
            "head": self.head,
            "pending": list(self.pending),
            "at_head": self.at_head,
            "pool": None if self.pool is None else self.pool.__dict__.copy(),
        }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def revision_probe(timeout_s: float) -> HealthProbe:
    """Extra health probe: the schema revision vs head, read on the probe's connection.

    On PostgreSQL the statement timeout of the probe's transaction is set to the probe timeout,
    so that a probe blocked behind a lock on the version table gives up by itself instead of
    keeping its thread and pooled connection for as long as the lock is held.
    """
    timeout_ms = max(1, int(timeout_s * 1000))

    def probe(name: str, conn: Connection) -> Mapping[str, Any]:
        _check_sqlite_file(name, conn)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {timeout_ms}")
        state = runner.connection_status(name, conn)
        return {
            "current": state.current,
            "head": state.head,
            "pending": list(state.pending),
            "at_head": state.at_head,
        }

    return probe


def _check_sqlite_file(name: str, conn: Connection) -> None:
    """A pooled SQLite connection keeps working on a file that was deleted or replaced, so
    `SELECT 1` alone would call such a database healthy while its writes go to a ghost file."""
    path = sqlite_path(conn.engine.url.render_as_string(hide_password=False))
    if path is not None and not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DatabaseError(
            name,
            f"the SQLite file {path} {what} (deleted or replaced?); open connections still use "
            "the old file and a new connection would not find the schema",
            hint="Restore the file (backups sit next to it as *.bak-*) and check what removed it.",
        )


def _from_result(result: HealthResult) -> DatabaseHealth:
    extra = result.extra
    cause: str | None = None
    if not result.ok:
        cause = _one_line(f"{result.error_class}: {result.error_message or ''}").rstrip(": ")
    elif result.probe_error:
        cause = _one_line(f"probe failed: {result.probe_error}")
    readable = result.ok and not result.probe_error and "at_head" in extra
    return DatabaseHealth(
        database=result.database,
        masked_url=result.masked_url,
        reachable=result.ok,
        cause=cause,
        latency_s=result.latency_s,
        current=extra.get("current") if readable else None,
        head=extra.get("head") if readable else None,
        pending=tuple(extra.get("pending", ())) if readable else (),
        at_head=bool(extra["at_head"]) if readable else None,
        pool=result.pool,
    )


def check_databases(databases: Databases, *, timeout: float | None = None) -> list[DatabaseHealth]:
    """Probe every database concurrently, each within `timeout` (default: the health timeout).

    Never raises for a broken database: a URL whose engine cannot even be built (e.g. a SQLite
    path under a regular file) is reported unhealthy without being probed, so it cannot take the
    other databases' results down with it. Sets the `contimg_db_up` and
    `contimg_db_schema_at_head` gauges (the probe latency gauge is set by `health_all`).
    """
    budget = timeout or databases.settings.health_timeout
    broken: dict[str, DatabaseHealth] = {}
    for name in databases.names:
        try:
            # Unchecked: a database behind head is exactly what this report must show.
            databases.engine(name, check_schema=False)
        except (OSError, SQLAlchemyError, ContimgError) as exc:
            broken[name] = DatabaseHealth(
                database=name,
                masked_url=databases.masked_url(name),
                reachable=False,
                cause=_one_line(databases.mask(f"{type(exc).__name__}: {exc}")),
                latency_s=None,
                current=None,
                head=None,
                pending=(),
                at_head=None,
                pool=None,
            )
    names = tuple(n for n in databases.names if n not in broken)
    results = (
        databases.health_all(timeout=budget, probe=revision_probe(budget), names=names)
        if names
        else {}
    )
    out: list[DatabaseHealth] = []
    for name in databases.names:
        health = broken.get(name) or _from_result(results[name])
        # health_all set it from SELECT 1 alone; a database whose file is gone is not up.
        metrics.DB_UP.labels(database=name).set(1 if health.healthy else 0)
        metrics.DB_SCHEMA_AT_HEAD.labels(database=name).set(1 if health.at_head else 0)
        out.append(health)
    return out


# --- what the sensor remembers between ticks -----------------------------------------------


@dataclass
class MonitorState:
    """The sensor cursor: last health per database and the pending sets already requested."""

    healthy: dict[str, bool] = field(default_factory=dict)
    causes: dict[str, str | None] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)
    #: Key of the pending revision set seen at the last tick (None: nothing pending).
    pending: str | None = None
    #: Set when the stored cursor could not be read (it is then replaced by a fresh one).
    unreadable: str | None = None

    @classmethod
    def from_cursor(cls, cursor: str | None) -> MonitorState:
        if not cursor:
            return cls()
        try:
            raw = json.loads(cursor)
        except json.JSONDecodeError as exc:
            return cls(unreadable=f"not JSON ({exc.msg})")
        if not isinstance(raw, dict) or raw.get("version") != CURSOR_VERSION:
            return cls(unreadable="unknown cursor format")
        healthy = raw.get("healthy") or {}
        causes = raw.get("causes") or {}
        requested = raw.get("requested") or []
        return cls(
            healthy={str(k): bool(v) for k, v in dict(healthy).items()},
            causes={str(k): (None if v is None else str(v)) for k, v in dict(causes).items()},
            requested=[str(k) for k in list(requested)],
            pending=None if raw.get("pending") is None else str(raw["pending"]),
        )

    def to_cursor(self) -> str:
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "healthy": self.healthy,
                "causes": self.causes,
                "requested": self.requested[-REMEMBERED_REQUESTS:],
                "pending": self.pending,
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class Transition:
    """A database changed state since the previous tick (or was first seen unhealthy)."""

    database: str
    healthy: bool
    cause: str | None
    first_seen: bool

    def message(self) -> str:
        if self.healthy:
            return f"database {self.database!r} recovered: reachable and its revision readable"
        seen = "is unhealthy" if self.first_seen else "became unhealthy"
        return f"database {self.database!r} {seen}: {self.cause}"


def transitions(previous: MonitorState, results: Iterable[DatabaseHealth]) -> list[Transition]:
    """Changes of health since `previous`; a database first seen healthy is not a change."""
    out: list[Transition] = []
    for health in results:
        before = previous.healthy.get(health.database)
        if before is None and health.healthy:
            continue
        if before is None or before != health.healthy:
            out.append(Transition(health.database, health.healthy, health.cause, before is None))
    return out


def next_state(previous: MonitorState, results: Iterable[DatabaseHealth]) -> MonitorState:
    results = list(results)
    pending = pending_revisions(results)
    return MonitorState(
        healthy={h.database: h.healthy for h in results},
        causes={h.database: h.cause for h in results},
        requested=list(previous.requested),
        pending=pending_key(pending) if pending else None,
    )


# --- pending migrations --------------------------------------------------------------------


def pending_revisions(results: Iterable[DatabaseHealth]) -> dict[str, tuple[str, ...]]:
    """Revisions still to apply, per healthy database that has any."""
    return {h.database: h.pending for h in results if h.healthy and h.pending}


def pending_key(pending: Mapping[str, Sequence[str]]) -> str:
    """A stable run key for one set of pending revisions (same set, same key)."""
    canonical = json.dumps({k: list(v) for k, v in sorted(pending.items())}, sort_keys=True)
    return "auto-migrate-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_pending(pending: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{name}: {', '.join(revs)}" for name, revs in pending.items())


# --- rendering -------------------------------------------------------------------------------


def _ms(latency: float | None) -> str:
    return "-" if latency is None else f"{latency * 1000:.1f} ms"


def _pool(pool: PoolStatus | None) -> str:
    if pool is None:
        return "-"
    return f"{pool.checked_out}/{pool.size}+{pool.overflow}"


def summary(results: Sequence[DatabaseHealth]) -> str:
    """One readable paragraph: problems first, then one short clause per database."""
    unhealthy = [h for h in results if not h.healthy]
    pending = pending_revisions(results)
    if not unhealthy and not pending:
        head = f"All {len(results)} databases healthy and at head."
    else:
        parts = []
        if unhealthy:
            parts.append(
                f"{len(unhealthy)} of {len(results)} databases UNHEALTHY: "
                + "; ".join(f"{h.database} ({h.cause})" for h in unhealthy)
                + "."
            )
        if pending:
            parts.append(f"Pending migrations: {describe_pending(pending)}.")
        head = " ".join(parts)
    clauses = []
    for h in results:
        if h.healthy:
            clauses.append(
                f"{h.database}: up {_ms(h.latency_s)}, rev {h.current or 'base'}, "
                f"pool {_pool(h.pool)}"
            )
        else:
            clauses.append(f"{h.database}: DOWN" if not h.reachable else f"{h.database}: ERROR")
    return f"{head} " + " | ".join(clauses)


def headline(results: Sequence[DatabaseHealth]) -> str:
    """One short line for a run log: counts, and the names that need attention."""
    unhealthy = [h.database for h in results if not h.healthy]
    behind = [h.database for h in results if h.healthy and h.pending]
    text = f"{len(results) - len(unhealthy)} of {len(results)} databases healthy"
    if unhealthy:
        text += f"; UNHEALTHY: {', '.join(unhealthy)}"
    if behind:
        text += f"; behind head: {', '.join(behind)}"
    elif results and not unhealthy:
        text += "; all at head"
    return text + ("" if not (unhealthy or behind) else " (details in the run's metadata)")


def _state(h: DatabaseHealth) -> str:
    if not h.healthy:
        return "DOWN" if not h.reachable else "ERROR"
    return "behind" if h.pending else "ok"


STATUS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (name, Dagster TableColumn type, description): few, short columns, so that the table reads
    # at a laptop's width; the URL, pool counters and causes are in the other metadata entries.
    ("database", "string", "Logical database"),
    ("state", "string", "ok, behind (migrations pending), DOWN (unreachable) or ERROR"),
    ("latency_ms", "float", "Probe latency (SELECT 1), milliseconds; -1 when unreachable"),
    ("revision", "string", "Schema revision recorded in the database (base = empty, ? unknown)"),
    ("pending", "int", "Revisions still to apply; -1 when unknown"),
    ("pool", "string", "Pool connections: checked out / size + overflow (this process)"),
)


def status_rows(results: Sequence[DatabaseHealth]) -> list[dict[str, str | int | float | bool]]:
    """One flat row per database for a table (types as in STATUS_COLUMNS; unknowns as -1/'?')."""
    return [
        {
            "database": h.database,
            "state": _state(h),
            "latency_ms": -1.0 if h.latency_s is None else round(h.latency_s * 1000, 1),
            "revision": (h.current or "base") if h.at_head is not None else "?",
            "pending": len(h.pending) if h.at_head is not None else -1,
            "pool": _pool(h.pool),
        }
        for h in results
    ]


def status_details(results: Sequence[DatabaseHealth]) -> list[dict[str, Any]]:
    """Everything else per database (URL, head, pending ids, pool counters, cause), for JSON."""
    return [
        {
            "database": h.database,
            "url": h.masked_url,
            "head": h.head,
            "pending": list(h.pending),
            "cause": h.cause,
            "pool": None if h.pool is None else h.pool.__dict__.copy(),
        }
        for h in results
    ]


def status_markdown(results: Sequence[DatabaseHealth]) -> str:
    """The same report as a Markdown table (for the UI's Markdown metadata and for logs)."""
    lines = [
        "| database | status | latency | revision | head | pending | pool out/size+ovf |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in results:
        state = "up" if h.healthy else ("DOWN" if not h.reachable else "ERROR")
        revision = (h.current or "base") if h.at_head is not None else "?"
        lines.append(
            f"| {h.database} | {state} | {_ms(h.latency_s)} | {revision} | {h.head or '-'} "
            f"| {', '.join(h.pending) or '-'} | {_pool(h.pool)} |"
        )
    problems = [h for h in results if not h.healthy]
    if problems:
        lines.append("")
        lines.extend(f"- **{h.database}**: {h.cause}" for h in problems)
    return "\n".join(lines)
