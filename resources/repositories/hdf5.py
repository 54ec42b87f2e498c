"""Everything that reads or writes the hdf5 database: correlator subband files and their groups.

SQLAlchemy Core on SQLite and PostgreSQL alike. Every function takes either a Connection (it
then runs inside the caller's transaction) or an Engine (it then opens and commits its own:
one transaction per batch of `BATCH` files for the writes, never one per file).

- `register_files` records what `resources.hdf5.headers.read_headers` returned: readable files
  go to `hdf5_files` (upsert by path; an unchanged size and mtime leaves the row alone, a
  changed one updates it), unreadable ones to `hdf5_failures` with their typed error. A path
  is in one table or the other: a file that becomes readable leaves `hdf5_failures`, one that
  becomes unreadable leaves `hdf5_files` (and so its group).
- `regroup_day` / `assign_groups_for_day` cluster a UTC day's files with
  `resources.hdf5.grouping` and write the group ids back (`regroup_days`: and the days that
  changed in turn); `day_groups` and `day_failures` answer the operator's questions.

The schema and the file-name rules stay in `resources.models.hdf5`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from resources.engines import Bind, transaction
from resources.hdf5.grouping import FileRef, SubbandGroup, group_files, group_id_of, summarise
from resources.hdf5.records import FailedFile, SubbandHeader
from resources.models._common import as_utc, utcnow
from resources.models.hdf5 import GROUP_TOLERANCE_S, Hdf5Failure, Hdf5File

HDF5_FILES = Hdf5File.__table__
HDF5_FAILURES = Hdf5Failure.__table__
#: Files per write transaction; also the size of each `IN (...)` lookup (well under SQLite's
#: 32,766 bound parameters, and the upsert helper splits its multi-row INSERTs further).
BATCH = 2000
#: How far before midnight `assign_groups_for_day` first looks for the start of the sweep.
LOOKBACK = dt.timedelta(hours=1)


@dataclass(frozen=True)
class RegisterResult:
    """What one `register_files` call did, by table (unchanged rows were not written)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed_inserted: int = 0
    failed_updated: int = 0
    failed_unchanged: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FailureRow:
    """One unreadable file as stored: `contimg hdf5 failed` prints path and error."""

    path: str
    filename: str
    obs_date: dt.date | None
    error_class: str
    error: str
    size_bytes: int | None
    mtime_ns: int | None
    updated_at: dt.datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "filename": self.filename,
            "obs_date": self.obs_date.isoformat() if self.obs_date else None,
            "error_class": self.error_class,
            "error": self.error,
        }


def _header_row(header: SubbandHeader, now: dt.datetime) -> dict[str, Any]:
    name = header.name
    return {
        "path": header.path,
        "filename": name.filename,
        "subband": name.subband,
        "timestamp_iso": name.timestamp_iso,
        "timestamp": name.timestamp,
        "mjd": name.mjd,
        "size_bytes": header.size_bytes,
        "mtime_ns": header.mtime_ns,
        "ra_deg": header.ra_deg,
        "dec_deg": header.dec_deg,
        "start_mjd": header.start_mjd,
        "end_mjd": header.end_mjd,
        "freq_min_hz": header.freq_min_hz,
        "freq_max_hz": header.freq_max_hz,
        "n_freqs": header.n_freqs,
        "n_times": header.n_times,
        "n_blts": header.n_blts,
        "updated_at": now,
    }


def _failure_row(failure: FailedFile, now: dt.datetime) -> dict[str, Any]:
    return {
        "path": failure.path,
        "filename": failure.filename,
        "obs_date": failure.obs_date,
        "size_bytes": failure.size_bytes,
        "mtime_ns": failure.mtime_ns,
        "error_class": failure.error_class,
        "error": failure.error,
        "updated_at": now,
    }


def _stamps(conn: Connection, table: Any, paths: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    rows = conn.execute(
        select(table.c.path, table.c.size_bytes, table.c.mtime_ns).where(table.c.path.in_(paths))
    )
    return {row.path: (row.size_bytes, row.mtime_ns) for row in rows}


def _error_of(conn: Connection, paths: Sequence[str]) -> dict[str, tuple[Any, Any, str]]:
    rows = conn.execute(
        select(
            HDF5_FAILURES.c.path,
            HDF5_FAILURES.c.size_bytes,
            HDF5_FAILURES.c.mtime_ns,
            HDF5_FAILURES.c.error,
        ).where(HDF5_FAILURES.c.path.in_(paths))
    )
    return {row.path: (row.size_bytes, row.mtime_ns, row.error) for row in rows}


def _insert_new(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany INSERT; a path another registrar inserted meanwhile is skipped.

    An executemany of one cached statement (SQLAlchemy batches it into multi-row INSERTs) costs
    a fraction of compiling a fresh 500-row upsert per chunk.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=["path"])
    elif conn.dialect.name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["path"])
    else:
        stmt = insert(table)
    conn.execute(stmt, rows)


def _update_changed(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany UPDATE by path of every column in the rows (group_id is never one)."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != "path"]
    stmt = (
        update(table)
        .where(table.c.path == bindparam("b_path"))
        .values({c: bindparam(f"b_{c}") for c in columns})
    )
    conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in rows])


def _register_batch(
    conn: Connection, headers: Sequence[SubbandHeader], failures: Sequence[FailedFile]
) -> RegisterResult:
    now = utcnow()
    good_paths = [h.path for h in headers]
    bad_paths = [f.path for f in failures]
    known = _stamps(conn, HDF5_FILES, good_paths) if good_paths else {}
    known_bad = _error_of(conn, bad_paths) if bad_paths else {}

    new = [_header_row(h, now) for h in headers if h.path not in known]
    changed = [
        _header_row(h, now)
        for h in headers
        if h.path in known and known[h.path] != (h.size_bytes, h.mtime_ns)
    ]
    # group_id and discovered_at are not in the rows: an update keeps them.
    _insert_new(conn, HDF5_FILES, new)
    _update_changed(conn, HDF5_FILES, changed)
    if (
        good_paths
        and conn.execute(  # readable now: no longer a failure
            select(func.count()).where(HDF5_FAILURES.c.path.in_(good_paths))
        ).scalar_one()
    ):
        conn.execute(delete(HDF5_FAILURES).where(HDF5_FAILURES.c.path.in_(good_paths)))

    new_bad = [_failure_row(f, now) for f in failures if f.path not in known_bad]
    changed_bad = [
        _failure_row(f, now)
        for f in failures
        if f.path in known_bad and known_bad[f.path] != (f.size_bytes, f.mtime_ns, f.error)
    ]
    _insert_new(conn, HDF5_FAILURES, new_bad)
    _update_changed(conn, HDF5_FAILURES, changed_bad)
    if bad_paths:  # unreadable now: out of hdf5_files and so out of its group
        conn.execute(delete(HDF5_FILES).where(HDF5_FILES.c.path.in_(bad_paths)))
    return RegisterResult(
        inserted=len(new),
        updated=len(changed),
        unchanged=len(headers) - len(new) - len(changed),
        failed_inserted=len(new_bad),
        failed_updated=len(changed_bad),
        failed_unchanged=len(failures) - len(new_bad) - len(changed_bad),
    )


def register_files(
    bind: Bind,
    headers: Iterable[SubbandHeader],
    failures: Iterable[FailedFile] = (),
    *,
    batch: int = BATCH,
) -> RegisterResult:
    """Record readable files and failures, `batch` files per transaction; idempotent.

    The last report of a path wins within one call. A re-registration of unchanged files
    writes nothing (their `updated_at` stays), so running a scan twice is cheap and harmless.
    """
    by_path: dict[str, SubbandHeader | FailedFile] = {}
    for item in (*headers, *failures):
        by_path[item.path] = item
    items = list(by_path.values())
    totals = dict.fromkeys(RegisterResult().to_dict(), 0)
    for start in range(0, len(items), max(batch, 1)):
        chunk = items[start : start + max(batch, 1)]
        good = [i for i in chunk if isinstance(i, SubbandHeader)]
        bad = [i for i in chunk if isinstance(i, FailedFile)]
        with transaction(bind) as conn:
            result = _register_batch(conn, good, bad)
        for key, value in result.to_dict().items():
            totals[key] += value
    return RegisterResult(**totals)


def known_files(bind: Bind, paths: Sequence[str]) -> dict[str, tuple[int | None, int | None]]:
    """(size, mtime_ns) recorded for each of these paths, in either table.

    What a scan compares its `stat` results with, so that only new or changed files have their
    headers read.
    """
    found: dict[str, tuple[int | None, int | None]] = {}
    with transaction(bind) as conn:
        for start in range(0, len(paths), BATCH):
            chunk = list(paths[start : start + BATCH])
            found.update(_stamps(conn, HDF5_FILES, chunk))
            found.update(_stamps(conn, HDF5_FAILURES, chunk))
    return found


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def _refs(conn: Connection, low: dt.datetime, high: dt.datetime) -> list[tuple[FileRef, Any]]:
    rows = conn.execute(
        select(
            HDF5_FILES.c.path, HDF5_FILES.c.timestamp, HDF5_FILES.c.subband, HDF5_FILES.c.group_id
        )
        .where(and_(HDF5_FILES.c.timestamp >= low, HDF5_FILES.c.timestamp <= high))
        .order_by(HDF5_FILES.c.timestamp, HDF5_FILES.c.subband, HDF5_FILES.c.path)
    )
    return [(FileRef(r.path, as_utc(r.timestamp), r.subband), r.group_id) for r in rows]


def _sweep_start(
    conn: Connection, midnight: dt.datetime, high: dt.datetime, tolerance: dt.timedelta
) -> list[tuple[FileRef, Any]]:
    """The files from the last certain group start at or before midnight up to `high`.

    The anchored rule makes a file a group start whenever it lies more than the tolerance after
    the file before it, whatever came earlier; from such a file on, clustering a window gives
    exactly what clustering all of history would. The window grows back from midnight until it
    holds such a file (or reaches the first file ever recorded).
    """
    lookback = LOOKBACK
    first_ever = conn.execute(select(func.min(HDF5_FILES.c.timestamp))).scalar()
    first = as_utc(first_ever) if first_ever is not None else midnight
    while True:
        low = midnight - lookback
        refs = _refs(conn, low, high)
        cut = None
        for index, (ref, _group) in enumerate(refs):
            if ref.timestamp > midnight:
                break
            previous = refs[index - 1][0].timestamp if index else None
            if (previous is None and ref.timestamp - low > tolerance) or (
                previous is not None and ref.timestamp - previous > tolerance
            ):
                cut = index
        if cut is not None or low <= first:
            return refs[cut or 0 :]
        lookback *= 2


@dataclass(frozen=True)
class DayRegroup:
    """What regrouping one day wrote: its groups, and the other days whose groups it changed."""

    groups: list[SubbandGroup]
    #: Days (of a group id, old or new) other than this one whose groups this call changed:
    #: a late file before midnight can move files after it into a group of the next day.
    touched_days: frozenset[dt.date] = frozenset()


def _id_day(group_id: str | None) -> dt.date | None:
    return dt.date.fromisoformat(group_id[:10]) if group_id else None


def regroup_day(bind: Bind, day: dt.date, *, tolerance_s: float = GROUP_TOLERANCE_S) -> DayRegroup:
    """Cluster the day's files into groups and store each file's group id (one transaction).

    A group belongs to the UTC day of its id (its earliest file), so an observation that
    starts at 23:59:40 keeps its files written after midnight. The window swept starts at a
    certain group start at or before midnight (`_sweep_start`) and ends `tolerance_s` after
    the next midnight, or later when a file further on still holds one of this day's ids (a
    stale one, from an earlier grouping); in that window every file's group is exactly what
    clustering all of history gives (the anchored rule looks only backwards), so every id in
    it that differs is written, in one executemany. Afterwards the stored ids of this day are
    exactly its groups: a re-run, a late file or a changed tolerance replaces them, never adds
    to them. Ids written on other days are reported in `touched_days`.
    """
    midnight, next_midnight = _day_bounds(day)
    tolerance = dt.timedelta(seconds=tolerance_s)
    high = next_midnight + tolerance
    with transaction(bind) as conn:
        stale_high = conn.execute(
            select(func.max(HDF5_FILES.c.timestamp)).where(
                and_(
                    HDF5_FILES.c.group_id >= group_id_of(midnight),
                    HDF5_FILES.c.group_id < group_id_of(next_midnight),
                )
            )
        ).scalar()
        if stale_high is not None:
            high = max(high, as_utc(stale_high))
        refs = _sweep_start(conn, midnight, high, tolerance)
        current = {ref.path: group for ref, group in refs}
        groups = group_files((ref for ref, _ in refs), tolerance_s)
        changes = [
            {"b_path": path, "b_group": g.group_id}
            for g in groups
            for path in g.paths
            if current.get(path) != g.group_id
        ]
        if changes:
            conn.execute(
                update(HDF5_FILES)
                .where(HDF5_FILES.c.path == bindparam("b_path"))
                .values(group_id=bindparam("b_group"), updated_at=utcnow()),
                changes,
            )
    touched = {_id_day(c["b_group"]) for c in changes} | {
        _id_day(current.get(c["b_path"])) for c in changes
    }
    touched.discard(None)
    touched.discard(day)
    return DayRegroup(
        groups=[g for g in groups if midnight <= g.start < next_midnight],
        touched_days=frozenset(d for d in touched if d is not None),
    )


def assign_groups_for_day(
    bind: Bind, day: dt.date, *, tolerance_s: float = GROUP_TOLERANCE_S
) -> list[SubbandGroup]:
    """`regroup_day`'s groups of the day (ids on that date), in time order."""
    return regroup_day(bind, day, tolerance_s=tolerance_s).groups


def regroup_days(
    bind: Bind, days: Iterable[dt.date], *, tolerance_s: float = GROUP_TOLERANCE_S
) -> dict[dt.date, list[SubbandGroup]]:
    """Regroup these days and every day whose groups that changed in turn; day -> its groups.

    In date order; a day another one touched (a file moved into or out of one of its groups)
    is regrouped too, since a group start that moved can move the files after it, and its
    groups are returned with the others (the sensor asks for a run of each day returned).
    Each day is regrouped once: the windows are exact, so a later day cannot change an
    earlier one's ids again.
    """
    todo = sorted(set(days))
    done: dict[dt.date, list[SubbandGroup]] = {}
    while todo:
        day = todo.pop(0)
        if day in done:
            continue
        result = regroup_day(bind, day, tolerance_s=tolerance_s)
        done[day] = result.groups
        todo = sorted({*todo, *(d for d in result.touched_days if d not in done)})
    return dict(sorted(done.items()))


def day_groups(bind: Bind, day: dt.date) -> list[SubbandGroup]:
    """The stored groups of a UTC day (ids on that date), with present, missing, duplicates.

    Read from the stored assignment, not re-clustered: `assign_groups_for_day` decides.
    """
    midnight, next_midnight = _day_bounds(day)
    low, high = group_id_of(midnight), group_id_of(next_midnight)
    stmt = select(
        HDF5_FILES.c.group_id, HDF5_FILES.c.path, HDF5_FILES.c.timestamp, HDF5_FILES.c.subband
    ).where(and_(HDF5_FILES.c.group_id >= low, HDF5_FILES.c.group_id < high))
    with transaction(bind) as conn:
        rows = [(r.group_id, r.path, as_utc(r.timestamp), r.subband) for r in conn.execute(stmt)]
    return summarise(rows)


def day_failures(bind: Bind, day: dt.date) -> list[FailureRow]:
    """The files of a day whose header could not be read, by path."""
    stmt = (
        select(HDF5_FAILURES).where(HDF5_FAILURES.c.obs_date == day).order_by(HDF5_FAILURES.c.path)
    )
    with transaction(bind) as conn:
        return [
            FailureRow(
                path=r.path,
                filename=r.filename,
                obs_date=r.obs_date,
                error_class=r.error_class,
                error=r.error,
                size_bytes=r.size_bytes,
                mtime_ns=r.mtime_ns,
                updated_at=as_utc(r.updated_at),
            )
            for r in conn.execute(stmt)
        ]


def counts(bind: Bind) -> dict[str, int]:
    """Rows per table: what the tests and the benchmark assert after a registration."""
    with transaction(bind) as conn:
        files = conn.execute(select(func.count()).select_from(HDF5_FILES)).scalar_one()
        failed = conn.execute(select(func.count()).select_from(HDF5_FAILURES)).scalar_one()
    return {"hdf5_files": int(files), "hdf5_failures": int(failed)}


def files_of_group(conn: Connection, group_id: str) -> list[str]:
    """Paths of one observation group's subband files, in subband order.

    A group is complete when it has `resources.models.hdf5.N_SUBBANDS` files; callers compare
    the length rather than this module guessing what an incomplete group should mean.
    """
    stmt = (
        select(HDF5_FILES.c.path)
        .where(HDF5_FILES.c.group_id == group_id)
        .order_by(HDF5_FILES.c.subband, HDF5_FILES.c.path)
    )
    return list(conn.execute(stmt).scalars())
