"""Everything that reads or writes the ingest database: the ingest queue's state machine and its
operator reads, as plain functions over SQLAlchemy Core (docs/schemas.md).

Every function takes either a Connection (it then runs inside the caller's transaction, and the
caller commits) or an Engine (it then opens and commits its own transaction). They work from any
process: sensors, steps, the CLI.

States and the only legal transitions::

    pending     -> in_progress   claim()
    in_progress -> completed     mark_completed()
    in_progress -> failed        mark_failed()
    in_progress -> pending       requeue_stale()  (a worker died or hung)
    failed      -> pending       retry_failed()
    in_progress -> missing       mark_missing()   (the file vanished before it was read)
    completed   -> missing       mark_missing()   (its images row and its file are both gone)

Anything else raises IngestStateError. register_files() is the one exception: a file whose size
or mtime changed goes back to `pending` from any state, with attempts reset, because the
content it describes is new. A worker still holding such a row then gets IngestStateError from
mark_completed/mark_failed (pending -> completed is illegal), which is right: its result is for
the old content.

`missing` (revision ingest_0003) is a file that vanished between its discovery and its
processing. It is not a parse failure: counted apart from `failed`, never retried by
retry_failed() (the file is not there to read), left out of known_files() so that the next scan
looks at its path afresh, and put back to `pending` by register_files() when it reappears, even
with the very size and mtime it had (a file moved out and back).

claim() is atomic across processes: on PostgreSQL the candidate rows are locked with
`FOR UPDATE SKIP LOCKED` inside one UPDATE ... RETURNING; on SQLite the same single UPDATE
statement runs under the database's write lock. Two workers never receive the same row.

Besides the transitions, this module answers the questions the rest of the pipeline asks of the
queue: what discovery already knows (`known_files`), who holds in_progress rows
(`in_progress_claims`, for releasing dead workers), which files of a day are completed, the
sensor's per-day digests (`pending_digests`), and the operator views of `contimg queue` (counts,
oldest pending, stuck and failed rows, the history of one file). "Stuck" uses `stale_condition`,
the predicate `requeue_stale` acts on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from resources.engines import Bind, transaction
from resources.errors import IngestStateError, InvalidQueryError
from resources.models._common import utcnow
from resources.models.ingest import INGEST_STATES, IngestQueueEntry
from resources.secrets import mask_text
from resources.settings import env_int

QUEUE = IngestQueueEntry.__table__

ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("pending", "in_progress"),
        ("in_progress", "completed"),
        ("in_progress", "failed"),
        ("in_progress", "pending"),
        ("failed", "pending"),
        ("in_progress", "missing"),
        ("completed", "missing"),
    }
)
MAX_ERROR_CHARS = 4000
_CHUNK = 500
#: The `error_class` recorded on a `missing` row (what vanished is a file, not a parse).
VANISHED_CLASS = "FileVanishedError"
MISSING = "missing"
VANISHED_MESSAGE = (
    "the file vanished between its discovery and its processing (deleted or moved); it is not "
    "retried, and is queued again if it reappears"
)


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

    @property
    def name(self) -> str:
        """The file name: listings show it beside the error instead of the whole path."""
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]

    def short_error(self) -> str:
        """`last_error` on one line, without the path it starts with (the listing shows it)."""
        return short_error(self.path, self.last_error)


def short_error(path: str, message: str | None) -> str:
    """An error message on one line without a leading `<path>: ` (errors name their file)."""
    text = " ".join((message or "").split())
    return text.removeprefix(f"{path}: ")


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

    Idempotent under concurrency: a path two discoverers insert at once is inserted once (the
    other's row is skipped by ON CONFLICT DO NOTHING, not an IntegrityError), and the update of
    a changed row sets the same values whoever runs it. A `missing` row (its file vanished) whose
    file is seen again counts as changed. Unchanged files are not touched (their state, attempts and timestamps stay). Works in
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
                    select(
                        QUEUE.c.path,
                        # A vanished file that is back is new work whatever its size and mtime.
                        case((QUEUE.c.state == MISSING, -1), else_=QUEUE.c.size_bytes).label(
                            "size_bytes"
                        ),
                        QUEUE.c.mtime_ns,
                    ).where(QUEUE.c.path.in_(chunk))
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
    row = conn.execute(
        select(QUEUE.c.path, QUEUE.c.state, QUEUE.c.error_class).where(_key_clause(path_or_id))
    ).first()
    if row is None:
        return str(path_or_id), "no row"
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


def mark_missing(bind: Bind, path_or_id: str | int) -> QueueRow:
    """in_progress -> missing: the claimed file is gone (deleted or moved after discovery).

    Also completed -> missing, for a completed file whose `images` row is gone and whose file
    the repair pass cannot read any more (else every run would try to repair it). Not a parse
    failure (nothing was wrong with the file): it is never retried until the file is seen
    again.
    """
    return _transition(
        bind,
        path_or_id,
        ("in_progress", "completed"),
        MISSING,
        {"last_error": VANISHED_MESSAGE, "error_class": VANISHED_CLASS, "completed_at": None},
    )


def release_claims(
    bind: Bind, worker: str, paths: Sequence[str], to_state: str = "pending"
) -> list[str]:
    """Give back rows this worker still holds: in_progress -> `to_state` (pending or completed).

    Conditional on `claimed_by == worker`, so a row another worker took over meanwhile (a stale
    requeue and a new claim) is left alone; returns the paths actually released. Used when a
    step fails half-way, so that the queue tells the truth at once instead of after the stale
    limit.
    """
    if to_state not in ("pending", "completed"):
        raise IngestStateError(", ".join(paths[:3]), "in_progress", to_state)
    if not paths:
        return []
    now = utcnow()
    values: dict[str, Any] = {"state": to_state, "updated_at": now}
    if to_state == "completed":
        values |= {"completed_at": now, "last_error": None, "error_class": None}
    else:
        values |= {"claimed_by": None, "claimed_at": None}
    released: list[str] = []
    with transaction(bind) as conn:
        for start in range(0, len(paths), _CHUNK):
            stmt = (
                update(QUEUE)
                .where(
                    QUEUE.c.path.in_(list(paths[start : start + _CHUNK])),
                    QUEUE.c.state == "in_progress",
                    QUEUE.c.claimed_by == worker,
                )
                .values(**values)
                .returning(QUEUE.c.path)
            )
            released += list(conn.execute(stmt).scalars())
    return released


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
    outcome overwrites it. `missing` rows are not failures and are not moved: their file is not
    there to read (register_files() takes them back when it reappears).
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
    """Rows per state (every state of INGEST_STATES present, zero when empty); `missing` is
    counted apart from `failed`."""
    stmt = select(QUEUE.c.state, func.count()).group_by(QUEUE.c.state)
    if obs_date is not None:
        stmt = stmt.where(QUEUE.c.obs_date == obs_date)
    out = dict.fromkeys(INGEST_STATES, 0)
    with transaction(bind) as conn:
        for state, n in conn.execute(stmt):
            out[state] = int(n)
    return out


# --- reads for discovery, workers, the ingest asset and the sensor ------------------------------


def known_files(bind: Bind) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every queued path: discovery's index of files it need not re-read.

    `missing` rows are left out: a path listed again after its file vanished is looked at anew.
    """
    stmt = select(QUEUE.c.path, QUEUE.c.size_bytes, QUEUE.c.mtime_ns).where(
        QUEUE.c.state != MISSING
    )
    with transaction(bind) as conn:
        rows = conn.execute(stmt)
        return {path: (size, mtime) for path, size, mtime in rows}


def in_progress_claims(
    conn: Connection, obs_date: dt.date | None = None
) -> list[tuple[str, str | None]]:
    """(path, claimed_by) of in_progress rows (optionally one day), for releasing dead workers."""
    stmt = select(QUEUE.c.path, QUEUE.c.claimed_by).where(QUEUE.c.state == "in_progress")
    if obs_date is not None:
        stmt = stmt.where(QUEUE.c.obs_date == obs_date)
    return [(path, claimed_by) for path, claimed_by in conn.execute(stmt).all()]


def completed_paths(bind: Bind, obs_date: dt.date) -> set[str]:
    """Paths of the day's completed rows (the ingest asset checks each has its `images` row)."""
    stmt = select(QUEUE.c.path).where(QUEUE.c.state == "completed", QUEUE.c.obs_date == obs_date)
    with transaction(bind) as conn:
        return set(conn.execute(stmt).scalars())


def pending_digests(bind: Bind) -> dict[dt.date, tuple[str, int]]:
    """Per observation day with pending files: (digest of the day's file set, pending count).

    The digest covers every file of the day whatever its state, so it changes when a file is
    added or changed, and not when a run consumes the queue (pending -> in_progress ->
    completed): a tick during a long run must not launch a second run for the same day. A
    `missing` file counts as different from the same file present, so its return is new work.
    """
    with transaction(bind) as conn:
        pending = dict(
            conn.execute(
                select(QUEUE.c.obs_date, func.count())
                .where(QUEUE.c.state == "pending", QUEUE.c.obs_date.is_not(None))
                .group_by(QUEUE.c.obs_date)
            ).all()
        )
        hashes: dict[dt.date, hashlib._Hash] = {}
        days = sorted(pending)
        for start in range(0, len(days), 100):
            stmt = (
                select(
                    QUEUE.c.obs_date,
                    QUEUE.c.path,
                    QUEUE.c.size_bytes,
                    QUEUE.c.mtime_ns,
                    (QUEUE.c.state == MISSING).label("vanished"),
                )
                .where(QUEUE.c.obs_date.in_(days[start : start + 100]))
                .order_by(QUEUE.c.obs_date, QUEUE.c.path)
            )
            for day, path, size, mtime, vanished in conn.execute(stmt):
                h = hashes.setdefault(day, hashlib.sha256())
                # A vanished file adds a marker (the other rows hash as they always did), so a
                # file that comes back with its old size and mtime still gives a new key.
                marker = "\0missing" if vanished else ""
                h.update(f"{path}\0{size}\0{mtime}{marker}\n".encode())
    return {day: (h.hexdigest()[:20], int(pending[day])) for day, h in hashes.items()}


# --- operator reads (contimg queue) -------------------------------------------------------------

#: Same variable and default as the ingest asset's stale limit (assets/catalogue/ingest.py).
STALE_MINUTES_ENV = "CONTIMG_INGEST_STALE_MINUTES"


def stale_limit() -> dt.timedelta:
    """The configured stuck limit (read at call time)."""
    return dt.timedelta(minutes=env_int(STALE_MINUTES_ENV))


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
        .where(stale_condition(older_than))
        .order_by(QUEUE.c.claimed_at, QUEUE.c.id)
        .limit(limit)
    )
    return _rows(conn, stmt)


def failed_rows(
    conn: Connection, *, obs_date: dt.date | None = None, limit: int | None = 50
) -> list[QueueRow]:
    """Failed rows (not the `missing` ones), most recently failed first."""
    stmt = select(QUEUE).where(QUEUE.c.state == "failed")
    if obs_date is not None:
        stmt = stmt.where(QUEUE.c.obs_date == obs_date)
    stmt = stmt.order_by(QUEUE.c.updated_at.desc(), QUEUE.c.id.desc()).limit(limit)
    return _rows(conn, stmt)


def missing_rows(
    bind: Bind, *, obs_date: dt.date | None = None, limit: int | None = 50
) -> list[QueueRow]:
    """Rows whose file vanished before it was processed, most recent first."""
    stmt = select(QUEUE).where(QUEUE.c.state == MISSING)
    if obs_date is not None:
        stmt = stmt.where(QUEUE.c.obs_date == obs_date)
    stmt = stmt.order_by(QUEUE.c.updated_at.desc(), QUEUE.c.id.desc()).limit(limit)
    with transaction(bind) as conn:
        return _rows(conn, stmt)


def failed_without_date(bind: Bind, *, limit: int | None = None) -> list[QueueRow]:
    """Failed rows that have no observation day: the file failed before a date could be read
    (not FITS, unreadable header, no DATE-OBS...), so no daily partition will ever list it.

    Most recently failed first; `error_class` and `last_error` say why. For `contimg queue
    --failed`, the sensor's tick and the daily metadata, which would otherwise show these files
    only as a count.
    """
    stmt = (
        select(QUEUE)
        .where(QUEUE.c.state == "failed", QUEUE.c.obs_date.is_(None))
        .order_by(QUEUE.c.updated_at.desc(), QUEUE.c.id.desc())
        .limit(limit)
    )
    with transaction(bind) as conn:
        return _rows(conn, stmt)


def history(bind: Bind, path: str) -> QueueRow | None:
    """The queue row of one file (its states, attempts, last error and timestamps)."""
    return get(bind, path)


@dataclass(frozen=True)
class QueueSummary:
    counts: dict[str, int]
    oldest_pending: QueueRow | None
    stuck: list[QueueRow]
    failed: list[QueueRow]
    stuck_after: dt.timedelta
    missing: list[QueueRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def summary(
    conn: Connection, *, stuck_after: dt.timedelta | None = None, limit: int = 20
) -> QueueSummary:
    """What `contimg queue` prints, read in one transaction."""
    after = stuck_after if stuck_after is not None else stale_limit()
    return QueueSummary(
        counts=counts(conn),
        oldest_pending=oldest_pending(conn),
        stuck=stuck_rows(conn, after, limit=limit),
        failed=failed_rows(conn, limit=limit),
        stuck_after=after,
        missing=missing_rows(conn, limit=limit),
    )
