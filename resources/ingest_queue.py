"""The ingest queue's state machine as plain functions over SQLAlchemy Core (DESIGN.md §2).

Every function takes either a Connection (it then runs inside the caller's transaction, and the
caller commits) or an Engine (it then opens and commits its own transaction). They work from any
process: sensors, steps, the CLI.

States and the only legal transitions::

    pending     -> in_progress   claim()
    in_progress -> completed     mark_completed()
    in_progress -> failed        mark_failed()
    in_progress -> pending       requeue_stale()  (a worker died or hung)
    failed      -> pending       retry_failed()

Anything else raises IngestStateError. register_files() is the one exception: a file whose size
or mtime changed goes back to `pending` from any state, with attempts reset, because the
content it describes is new. A worker still holding such a row then gets IngestStateError from
mark_completed/mark_failed (pending -> completed is illegal), which is right: its result is for
the old content.

claim() is atomic across processes: on PostgreSQL the candidate rows are locked with
`FOR UPDATE SKIP LOCKED` inside one UPDATE ... RETURNING; on SQLite the same single UPDATE
statement runs under the database's write lock. Two workers never receive the same row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from resources.engines import Bind, transaction
from resources.errors import IngestStateError
from resources.models._common import utcnow
from resources.models.ingest import INGEST_STATES, IngestQueueEntry
from resources.secrets import mask_text

QUEUE = IngestQueueEntry.__table__

ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("pending", "in_progress"),
        ("in_progress", "completed"),
        ("in_progress", "failed"),
        ("in_progress", "pending"),
        ("failed", "pending"),
    }
)
MAX_ERROR_CHARS = 4000
_CHUNK = 500


@dataclass(frozen=True)
class FileRecord:
    """What discovery knows about one file."""

    path: str
    size_bytes: int
    mtime_ns: int
    obs_date: dt.date | None = None


@dataclass(frozen=True)
class RegisterResult:
    inserted: int
    changed: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.inserted + self.changed + self.unchanged


@dataclass(frozen=True)
class QueueRow:
    id: int
    path: str
    obs_date: dt.date | None
    size_bytes: int
    mtime_ns: int
    state: str
    attempts: int
    last_error: str | None
    error_class: str | None
    claimed_by: str | None
    claimed_at: dt.datetime | None
    discovered_at: dt.datetime | None
    updated_at: dt.datetime | None
    completed_at: dt.datetime | None

    @classmethod
    def from_mapping(cls, row: RowMapping | Mapping[str, Any]) -> QueueRow:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def _as_record(item: FileRecord | Mapping[str, Any]) -> FileRecord:
    if isinstance(item, FileRecord):
        return item
    return FileRecord(
        path=str(item["path"]),
        size_bytes=int(item["size_bytes"]),
        mtime_ns=int(item["mtime_ns"]),
        obs_date=item.get("obs_date"),
    )


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    # Two discoverers may race on the same new path: the loser's row is skipped, not an error.
    if conn.dialect.name == "postgresql":
        return postgresql.insert(QUEUE).on_conflict_do_nothing(index_elements=["path"])
    if conn.dialect.name == "sqlite":
        return sqlite.insert(QUEUE).on_conflict_do_nothing(index_elements=["path"])
    return insert(QUEUE)


def register_files(bind: Bind, records: Iterable[FileRecord | Mapping[str, Any]]) -> RegisterResult:
    """Upsert discovered files: new -> pending; changed size/mtime -> pending, attempts 0.

    Unchanged files are not touched (their state, attempts and timestamps stay). Works in
    chunks of 500 paths: one SELECT, one multi-row INSERT and one executemany UPDATE each.
    """
    by_path: dict[str, FileRecord] = {}
    for item in records:
        record = _as_record(item)
        by_path[record.path] = record  # the last report of a path wins
    inserted = changed = unchanged = 0
    paths = list(by_path)
    with transaction(bind) as conn:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start : start + _CHUNK]
            existing = {
                row.path: (row.size_bytes, row.mtime_ns)
                for row in conn.execute(
                    select(QUEUE.c.path, QUEUE.c.size_bytes, QUEUE.c.mtime_ns).where(
                        QUEUE.c.path.in_(chunk)
                    )
                )
            }
            now = utcnow()
            new_rows: list[dict[str, Any]] = []
            changed_rows: list[dict[str, Any]] = []
            for path in chunk:
                record = by_path[path]
                known = existing.get(path)
                if known is None:
                    new_rows.append(
                        {
                            "path": path,
                            "obs_date": record.obs_date,
                            "size_bytes": record.size_bytes,
                            "mtime_ns": record.mtime_ns,
                            "state": "pending",
                            "attempts": 0,
                            "discovered_at": now,
                            "updated_at": now,
                        }
                    )
                elif known != (record.size_bytes, record.mtime_ns):
                    changed_rows.append(
                        {
                            "b_path": path,
                            "b_size": record.size_bytes,
                            "b_mtime": record.mtime_ns,
                            "b_obs_date": record.obs_date,
                        }
                    )
                else:
                    unchanged += 1
            if new_rows:
                stmt = _insert_ignoring_duplicates(conn).returning(QUEUE.c.id)
                inserted += len(conn.execute(stmt, new_rows).all())
            if changed_rows:
                stmt = (
                    update(QUEUE)
                    .where(QUEUE.c.path == bindparam("b_path"))
                    .values(
                        size_bytes=bindparam("b_size"),
                        mtime_ns=bindparam("b_mtime"),
                        obs_date=func.coalesce(bindparam("b_obs_date"), QUEUE.c.obs_date),
                        state="pending",
                        attempts=0,
                        last_error=None,
                        error_class=None,
                        claimed_by=None,
                        claimed_at=None,
                        completed_at=None,
                        updated_at=now,
                    )
                )
                conn.execute(stmt, changed_rows)
                changed += len(changed_rows)
    return RegisterResult(inserted=inserted, changed=changed, unchanged=unchanged)


def claim(
    bind: Bind, *, obs_date: dt.date | None = None, limit: int, worker: str
) -> list[QueueRow]:
    """Atomically move up to `limit` pending rows to in_progress for `worker`.

    Oldest observation day first, then discovery order. Each claim counts as an attempt.
    """
    if limit <= 0:
        return []
    candidates = select(QUEUE.c.id).where(QUEUE.c.state == "pending")
    if obs_date is not None:
        candidates = candidates.where(QUEUE.c.obs_date == obs_date)
    candidates = (
        candidates.order_by(QUEUE.c.obs_date, QUEUE.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # rendered on PostgreSQL, ignored by SQLite
        .cte("claimable")
        .prefix_with("MATERIALIZED")
    )
    now = utcnow()
    # The candidates are a MATERIALIZED CTE so that PostgreSQL evaluates them exactly once.
    # Written as a plain sub-select, the planner may re-scan it inside a nested loop; each
    # re-scan locks (SKIP LOCKED) a different row, and more than `limit` rows get claimed.
    stmt = (
        update(QUEUE)
        # state is re-checked on the outer UPDATE: under READ COMMITTED a row another worker
        # changed after our sub-select saw it is re-evaluated and skipped.
        .where(QUEUE.c.id == candidates.c.id, QUEUE.c.state == "pending")
        .values(
            state="in_progress",
            attempts=QUEUE.c.attempts + 1,
            claimed_by=worker,
            claimed_at=now,
            updated_at=now,
        )
        .returning(*QUEUE.c)
    )
    with transaction(bind) as conn:
        rows = [QueueRow.from_mapping(r) for r in conn.execute(stmt).mappings().all()]
    rows.sort(key=lambda r: (r.obs_date or dt.date.min, r.id))
    return rows


def _key_clause(path_or_id: str | int) -> Any:
    if isinstance(path_or_id, int):
        return QUEUE.c.id == path_or_id
    return QUEUE.c.path == str(path_or_id)


def _current_state(conn: Connection, path_or_id: str | int) -> tuple[str, str]:
    row = conn.execute(select(QUEUE.c.path, QUEUE.c.state).where(_key_clause(path_or_id))).first()
    if row is None:
        return str(path_or_id), "missing"
    return row.path, row.state


def _transition(
    bind: Bind,
    path_or_id: str | int,
    from_states: Sequence[str],
    to_state: str,
    values: dict[str, Any],
) -> QueueRow:
    for state in (*from_states, to_state):
        if state not in INGEST_STATES:
            raise IngestStateError(str(path_or_id), state, to_state)
    now = utcnow()
    stmt = (
        update(QUEUE)
        .where(_key_clause(path_or_id), QUEUE.c.state.in_(from_states))
        .values(state=to_state, updated_at=now, **values)
        .returning(*QUEUE.c)
    )
    with transaction(bind) as conn:
        row = conn.execute(stmt).mappings().first()
        if row is None:
            path, current = _current_state(conn, path_or_id)
            raise IngestStateError(path, current, to_state)
        return QueueRow.from_mapping(row)


def transition(bind: Bind, path: str | int, from_state: str, to_state: str) -> QueueRow:
    """Move one row from `from_state` to `to_state` if that edge exists and the row is there.

    The UPDATE is conditional on the current state, so a concurrent change makes this raise
    IngestStateError (naming the state actually found) instead of overwriting it.
    """
    if (from_state, to_state) not in ALLOWED_TRANSITIONS:
        raise IngestStateError(str(path), from_state, to_state)
    now = utcnow()
    values: dict[str, Any] = {}
    if to_state == "in_progress":
        values = {"attempts": QUEUE.c.attempts + 1, "claimed_at": now}
    elif to_state == "completed":
        values = {"completed_at": now, "last_error": None, "error_class": None}
    elif to_state == "pending":
        values = {"claimed_by": None, "claimed_at": None}
    return _transition(bind, path, (from_state,), to_state, values)


def mark_completed(bind: Bind, path_or_id: str | int) -> QueueRow:
    return _transition(
        bind,
        path_or_id,
        ("in_progress",),
        "completed",
        {"completed_at": utcnow(), "last_error": None, "error_class": None},
    )


def mark_failed(bind: Bind, path_or_id: str | int, error_class: str, message: str) -> QueueRow:
    """Record a failure; the message is masked (no passwords) and truncated."""
    text = mask_text(message)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return _transition(
        bind,
        path_or_id,
        ("in_progress",),
        "failed",
        {"last_error": text, "error_class": error_class[:128]},
    )


def stale_condition(older_than: dt.timedelta) -> ColumnElement[bool]:
    """Rows claimed more than `older_than` ago and still in_progress (a dead or hung worker).

    Shared by requeue_stale() and the `contimg queue` listing of stuck rows, so that what the
    operator sees as stuck is exactly what the next run takes back.
    """
    return and_(QUEUE.c.state == "in_progress", QUEUE.c.claimed_at < utcnow() - older_than)


def requeue_stale(bind: Bind, older_than: dt.timedelta) -> int:
    """Rows claimed more than `older_than` ago and still in_progress go back to pending."""
    stmt = (
        update(QUEUE)
        .where(stale_condition(older_than))
        .values(state="pending", claimed_by=None, claimed_at=None, updated_at=utcnow())
    )
    with transaction(bind) as conn:
        return int(conn.execute(stmt).rowcount or 0)


def retry_failed(
    bind: Bind, obs_date: dt.date | None = None, *, max_attempts: int | None = None
) -> int:
    """failed -> pending (optionally one day, optionally only rows below `max_attempts`).

    attempts is kept, so repeated failures stay visible; last_error stays until the next
    outcome overwrites it.
    """
    stmt = update(QUEUE).where(QUEUE.c.state == "failed")
    if obs_date is not None:
        stmt = stmt.where(QUEUE.c.obs_date == obs_date)
    if max_attempts is not None:
        stmt = stmt.where(QUEUE.c.attempts < max_attempts)
    stmt = stmt.values(state="pending", claimed_by=None, claimed_at=None, updated_at=utcnow())
    with transaction(bind) as conn:
        return int(conn.execute(stmt).rowcount or 0)


def get(bind: Bind, path_or_id: str | int) -> QueueRow | None:
    with transaction(bind) as conn:
        row = conn.execute(select(QUEUE).where(_key_clause(path_or_id))).mappings().first()
    return QueueRow.from_mapping(row) if row is not None else None


def counts(bind: Bind, obs_date: dt.date | None = None) -> dict[str, int]:
    """Rows per state (every state present, zero when empty)."""
    stmt = select(QUEUE.c.state, func.count()).group_by(QUEUE.c.state)
    if obs_date is not None:
        stmt = stmt.where(QUEUE.c.obs_date == obs_date)
    out = dict.fromkeys(INGEST_STATES, 0)
    with transaction(bind) as conn:
        for state, n in conn.execute(stmt):
            out[state] = int(n)
    return out
