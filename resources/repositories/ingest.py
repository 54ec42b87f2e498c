"""Queries of the ingest database for operators: counts by state, oldest pending, stuck and
failed rows, the history of one file.

State changes stay in `resources.ingest_queue` (the state machine); this module only reads, and
its `retry_failed` is that module's function. "Stuck" uses `ingest_queue.stale_condition`, the
predicate `requeue_stale` acts on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.engine import Connection

from resources import ingest_queue
from resources.engines import Bind
from resources.errors import InvalidQueryError
from resources.ingest_queue import QUEUE, QueueRow
from resources.settings import env_int

#: Same variable and default as the ingest asset's stale limit (assets/ingest.py).
STALE_MINUTES_ENV = "CONTIMG_INGEST_STALE_MINUTES"
DEFAULT_STALE_MINUTES = 30

retry_failed = ingest_queue.retry_failed
counts = ingest_queue.counts


def stale_limit() -> dt.timedelta:
    """The configured stuck limit (read at call time)."""
    return dt.timedelta(minutes=env_int(STALE_MINUTES_ENV, DEFAULT_STALE_MINUTES))


def _rows(conn: Connection, stmt: Select[Any]) -> list[QueueRow]:
    return [QueueRow.from_mapping(r) for r in conn.execute(stmt).mappings()]


def oldest_pending(conn: Connection) -> QueueRow | None:
    """The pending row waiting longest (by discovery time)."""
    stmt = (
        select(QUEUE)
        .where(QUEUE.c.state == "pending")
        .order_by(QUEUE.c.discovered_at, QUEUE.c.id)
        .limit(1)
    )
    rows = _rows(conn, stmt)
    return rows[0] if rows else None


def stuck_rows(
    conn: Connection, older_than: dt.timedelta, *, limit: int | None = 50
) -> list[QueueRow]:
    """in_progress rows claimed more than `older_than` ago, longest-claimed first."""
    if older_than < dt.timedelta(0):
        raise InvalidQueryError("stuck limit", f"{older_than} is negative")
    stmt = (
        select(QUEUE)
        .where(ingest_queue.stale_condition(older_than))
        .order_by(QUEUE.c.claimed_at, QUEUE.c.id)
        .limit(limit)
    )
    return _rows(conn, stmt)


def failed_rows(
    conn: Connection, *, obs_date: dt.date | None = None, limit: int | None = 50
) -> list[QueueRow]:
    """Failed rows, most recently failed first."""
    stmt = select(QUEUE).where(QUEUE.c.state == "failed")
    if obs_date is not None:
        stmt = stmt.where(QUEUE.c.obs_date == obs_date)
    stmt = stmt.order_by(QUEUE.c.updated_at.desc(), QUEUE.c.id.desc()).limit(limit)
    return _rows(conn, stmt)


def history(bind: Bind, path: str) -> QueueRow | None:
    """The queue row of one file (its states, attempts, last error and timestamps)."""
    return ingest_queue.get(bind, path)


@dataclass(frozen=True)
class QueueSummary:
    counts: dict[str, int]
    oldest_pending: QueueRow | None
    stuck: list[QueueRow]
    failed: list[QueueRow]
    stuck_after: dt.timedelta

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def summary(
    conn: Connection, *, stuck_after: dt.timedelta | None = None, limit: int = 20
) -> QueueSummary:
    """What `contimg queue` prints, read in one transaction."""
    after = stuck_after if stuck_after is not None else stale_limit()
    return QueueSummary(
        counts=ingest_queue.counts(conn),
        oldest_pending=oldest_pending(conn),
        stuck=stuck_rows(conn, after, limit=limit),
        failed=failed_rows(conn, limit=limit),
        stuck_after=after,
    )
