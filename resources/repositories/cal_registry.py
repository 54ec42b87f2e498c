"""Everything that reads or writes the cal_registry database: "which tables apply at MJD m?",
registering and retiring tables, and which tables were applied to which measurement set.

`active_caltables_at` is the one implementation of the selection rule (newest active set whose
window, widened by ±12 h, covers m); `applylist` is the same query under the name the CLI uses,
with its arguments checked. The write side keeps one invariant (docs/calibration.md): no two
ACTIVE tables of one type in different sets have overlapping validity windows, because then the
selection rule alone, not the operator, would decide which calibration a day gets.
`register_caltables` refuses such an overlap (nothing written) unless told to supersede, and
`overlapping_active_sets` finds the overlaps that got in anyway (rows written by hand, an older
version). The table definitions stay in `resources.models.cal_registry`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased

from resources.engines import Bind, transaction
from resources.errors import CalibrationConflictError, InvalidQueryError
from resources.models._common import as_utc, utcnow
from resources.models.cal_registry import (
    CALTABLE_STATUSES,
    CALTABLE_TYPES,
    CalibrationApplied,
    Caltable,
)

if TYPE_CHECKING:
    from resources.calibration.tables import CaltableInfo

CALTABLES = Caltable.__table__
APPLIED = CalibrationApplied.__table__
#: Key of the PostgreSQL advisory lock that serializes the registry's writers (any constant).
WRITE_LOCK_KEY = 0x63616C72  # "calr"
#: Two windows closer than this (days, ~1 ms) are the same window: MJD floats from TIME / 86400.
SAME_WINDOW_DAYS = 1e-8
DEFAULT_WINDOW_HOURS = 12.0


@dataclass(frozen=True)
class CaltableRecord:
    """One applicable calibration table, as returned by `active_caltables_at`."""

    id: int
    set_name: str
    path: str
    table_type: str
    apply_order: int
    valid_start_mjd: float
    valid_end_mjd: float
    created_at: dt.datetime | None
    cal_field: str | None
    refant: str | None


def active_caltables_at(
    conn_or_session: Connection | Session, mjd: float, window_hours: float = 12.0
) -> list[CaltableRecord]:
    """The tables to apply at MJD `mjd`, in apply order.

    Among active tables whose validity window, widened by `window_hours` on each side, covers
    `mjd`, the newest set wins (largest `created_at`, then latest window start, then set name);
    every active table of that set covering `mjd` is returned. Empty when nothing applies.
    """
    pad = window_hours / 24.0
    t = Caltable.__table__
    covers = and_(
        t.c.status == "active",
        t.c.valid_start_mjd - pad <= mjd,
        t.c.valid_end_mjd + pad >= mjd,
    )
    newest_set = (
        select(t.c.set_name)
        .where(covers)
        .group_by(t.c.set_name)
        .order_by(
            func.max(t.c.created_at).desc(),
            func.max(t.c.valid_start_mjd).desc(),
            t.c.set_name.desc(),
        )
        .limit(1)
        .scalar_subquery()
    )
    stmt = select(t).where(covers, t.c.set_name == newest_set).order_by(t.c.apply_order, t.c.path)
    rows = conn_or_session.execute(stmt).mappings().all()
    return [
        CaltableRecord(
            id=r["id"],
            set_name=r["set_name"],
            path=r["path"],
            table_type=r["table_type"],
            apply_order=r["apply_order"],
            valid_start_mjd=r["valid_start_mjd"],
            valid_end_mjd=r["valid_end_mjd"],
            created_at=r["created_at"],
            cal_field=r["cal_field"],
            refant=r["refant"],
        )
        for r in rows
    ]


def applylist(
    conn: Connection, mjd: float, window_hours: float = DEFAULT_WINDOW_HOURS
) -> list[CaltableRecord]:
    """The ordered calibration tables to apply at `mjd` (empty when none applies)."""
    if not math.isfinite(mjd):
        raise InvalidQueryError("mjd", f"{mjd!r} is not a finite number")
    if not math.isfinite(window_hours) or window_hours < 0:
        raise InvalidQueryError("window hours", f"{window_hours!r}; expected a number >= 0")
    return active_caltables_at(conn, mjd, window_hours=window_hours)


def status_counts(conn: Connection) -> dict[str, int]:
    """Tables per status (active / retired)."""
    stmt = select(CALTABLES.c.status, func.count()).group_by(CALTABLES.c.status)
    return {status: int(n) for status, n in conn.execute(stmt)}


# --- writing: register, retire ----------------------------------------------------------------


@dataclass
class RegisterResult:
    """What one `register_caltables` call did, path by path."""

    set_name: str
    registered: list[str] = field(default_factory=list)
    #: Already registered with this set and window: nothing written (a repeated scan or command).
    unchanged: list[str] = field(default_factory=list)
    #: Paths of other sets' tables retired because the new ones supersede them.
    retired: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI and the sensor."""
        text = (
            f"set {self.set_name}: {len(self.registered)} registered, "
            f"{len(self.unchanged)} unchanged"
        )
        return text + (f", {len(self.retired)} retired (superseded)" if self.retired else "")


@dataclass(frozen=True)
class CaltableRow:
    """One registered calibration table, as `list_caltables` returns it."""

    id: int
    set_name: str
    path: str
    table_type: str
    apply_order: int
    status: str
    valid_start_mjd: float
    valid_end_mjd: float
    created_at: dt.datetime | None
    cal_field: str | None
    refant: str | None
    notes: str | None


@dataclass(frozen=True)
class Overlap:
    """Two active tables of one type, in different sets, whose validity windows overlap."""

    table_type: str
    first_set: str
    first_path: str
    first_window: tuple[float, float]
    second_set: str
    second_path: str
    second_window: tuple[float, float]

    def describe(self) -> str:
        return (
            f"{self.table_type}: set {self.first_set} ({_window(self.first_window)}) overlaps "
            f"set {self.second_set} ({_window(self.second_window)})"
        )


@dataclass(frozen=True)
class AppliedRecord:
    """One table recorded as applied to a measurement set, with the table's CURRENT status."""

    ms_path: str
    caltable_id: int
    path: str
    table_type: str
    apply_order: int
    set_name: str
    status: str
    applied_at: dt.datetime | None


def _lock_writers(conn: Connection) -> None:
    """Serialize the registry's writers until the transaction ends.

    The overlap and retired checks read before they write: two writers at once (the sensor and
    `contimg cal register`) could both pass their check and together break the rule. On
    PostgreSQL an advisory lock held to the end of the transaction; on SQLite a write that
    changes nothing, which takes the database's write lock first (the second writer waits for
    it under the busy timeout, then reads what the first committed).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.execute(text("UPDATE caltables SET status = status WHERE 1 = 0"))


def _window(window: tuple[float, float]) -> str:
    return f"MJD {window[0]:.5f}..{window[1]:.5f}"


def windows_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """[a0, a1] and [b0, b1] overlap when a0 < b1 and b0 < a1: touching ends do not."""
    return a[0] < b[1] and b[0] < a[1]


def _same_window(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return abs(a[0] - b[0]) < SAME_WINDOW_DAYS and abs(a[1] - b[1]) < SAME_WINDOW_DAYS


def _check_window(info: CaltableInfo) -> None:
    start, end = info.start_mjd, info.end_mjd
    if not (math.isfinite(start) and math.isfinite(end)):
        raise InvalidQueryError("valid window", f"{info.path}: {start!r}..{end!r} is not finite")
    if end < start:
        raise InvalidQueryError(
            "valid window", f"{info.path}: ends (MJD {end}) before it starts (MJD {start})"
        )


def _overlapping_active(
    conn: Connection, table_type: str, window: tuple[float, float], *, other_than: str
) -> list[Any]:
    """Active tables of `table_type` outside set `other_than` overlapping `window`."""
    t = CALTABLES
    stmt = (
        select(t.c.id, t.c.path, t.c.set_name, t.c.valid_start_mjd, t.c.valid_end_mjd)
        .where(
            t.c.status == "active",
            t.c.table_type == table_type,
            t.c.set_name != other_than,
            t.c.valid_start_mjd < window[1],
            t.c.valid_end_mjd > window[0],
        )
        .order_by(t.c.valid_start_mjd, t.c.path)
    )
    return list(conn.execute(stmt))


def _row_values(info: CaltableInfo, set_name: str, notes: str | None) -> dict[str, Any]:
    return {
        "set_name": set_name,
        "path": info.path,
        "table_type": info.table_type,
        "apply_order": info.apply_order,
        "cal_field": info.cal_field,
        "refant": info.refant,
        "valid_start_mjd": info.start_mjd,
        "valid_end_mjd": info.end_mjd,
        "status": "active",
        "notes": notes,
    }


def register_caltables(
    bind: Bind,
    infos: Sequence[CaltableInfo],
    *,
    set_name: str,
    supersede: bool = False,
    notes: str | None = None,
) -> RegisterResult:
    """Register `infos` as (members of) set `set_name`, in one transaction.

    Every rule is checked before anything is written, so a refusal leaves the database as it
    was: an active table of the same type in another set whose window overlaps a new one, or a
    path already registered with another window, set or status, raises CalibrationConflictError
    (one line naming the path, the type, the other set and both windows) unless `supersede`, in
    which case the overlapping tables are retired (with a note naming this set) and the path's
    row is replaced. A path registered again with the same set and window is left alone.
    """
    if not set_name or len(set_name) > 128:
        raise InvalidQueryError("set name", f"{set_name!r}; expected 1 to 128 characters")
    result = RegisterResult(set_name=set_name)
    t = CALTABLES
    with transaction(bind) as conn:
        _lock_writers(conn)
        existing = {
            row.path: row
            for row in conn.execute(select(t).where(t.c.path.in_([info.path for info in infos])))
        }
        new_rows: list[dict[str, Any]] = []
        replaced: list[dict[str, Any]] = []
        to_retire: dict[int, str] = {}
        for info in infos:
            _check_window(info)
            window = (info.start_mjd, info.end_mjd)
            old = existing.get(info.path)
            if old is not None:
                old_window = (old.valid_start_mjd, old.valid_end_mjd)
                if (
                    old.set_name == set_name
                    and old.status == "active"
                    and _same_window(old_window, window)
                ):
                    result.unchanged.append(info.path)
                    continue
                if not supersede:
                    raise CalibrationConflictError(
                        f"{info.path} ({info.table_type}) is already registered in set "
                        f"{old.set_name} ({old.status}, {_window(old_window)}); registering it "
                        f"in set {set_name} ({_window(window)}) needs --supersede"
                    )
            for other in _overlapping_active(conn, info.table_type, window, other_than=set_name):
                if other.path == info.path:
                    continue
                if not supersede:
                    raise CalibrationConflictError(
                        f"{info.path} ({info.table_type}, {_window(window)}) overlaps active "
                        f"set {other.set_name} ({other.path}, "
                        f"{_window((other.valid_start_mjd, other.valid_end_mjd))}); nothing "
                        f"registered: retire that set or pass --supersede"
                    )
                to_retire[other.id] = other.path
            values = _row_values(info, set_name, notes)
            (replaced if old is not None else new_rows).append(values)
        note = f"retired: superseded by set {set_name} on {utcnow().date().isoformat()}"
        for table_id in sorted(to_retire):
            conn.execute(
                update(t)
                .where(t.c.id == table_id)
                .values(
                    status="retired",
                    notes=func.coalesce(t.c.notes + "; ", "") + note,
                )
            )
        result.retired = sorted(to_retire.values())
        for values in replaced:
            conn.execute(
                update(t).where(t.c.path == values["path"]).values(**values, created_at=utcnow())
            )
        if new_rows:
            conn.execute(insert(t), new_rows)
        result.registered = [v["path"] for v in [*replaced, *new_rows]]
    return result


def retire(bind: Bind, *, paths: Iterable[str] | None = None, set_name: str | None = None) -> int:
    """Retire the given tables, or every table of `set_name`; the number of tables retired.

    Retired tables stay in the registry (a measurement set calibrated with one keeps its
    lineage) but no longer apply nor count as overlapping.
    """
    chosen = list(paths or [])
    if bool(chosen) == (set_name is not None):
        raise InvalidQueryError("retire", "give either paths or a set name")
    t = CALTABLES
    where = t.c.path.in_(chosen) if chosen else t.c.set_name == set_name
    with transaction(bind) as conn:
        _lock_writers(conn)
        done = conn.execute(
            update(t)
            .where(where, t.c.status == "active")
            .values(status="retired", notes=func.coalesce(t.c.notes + "; ", "") + "retired")
        )
    return int(done.rowcount or 0)


def list_caltables(
    bind: Bind,
    *,
    status: str | None = None,
    set_name: str | None = None,
    table_type: str | None = None,
) -> list[CaltableRow]:
    """Registered tables, by set (newest first) then apply order; filters are exact."""
    if status is not None and status not in CALTABLE_STATUSES:
        raise InvalidQueryError(
            "status", f"{status!r}; expected one of {', '.join(CALTABLE_STATUSES)}"
        )
    if table_type is not None and table_type not in CALTABLE_TYPES:
        raise InvalidQueryError(
            "type", f"{table_type!r}; expected one of {', '.join(CALTABLE_TYPES)}"
        )
    t = CALTABLES
    stmt = select(t)
    if status is not None:
        stmt = stmt.where(t.c.status == status)
    if set_name is not None:
        stmt = stmt.where(t.c.set_name == set_name)
    if table_type is not None:
        stmt = stmt.where(t.c.table_type == table_type)
    stmt = stmt.order_by(t.c.valid_start_mjd.desc(), t.c.set_name, t.c.apply_order, t.c.path)
    with transaction(bind) as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        CaltableRow(
            id=r["id"],
            set_name=r["set_name"],
            path=r["path"],
            table_type=r["table_type"],
            apply_order=r["apply_order"],
            status=r["status"],
            valid_start_mjd=r["valid_start_mjd"],
            valid_end_mjd=r["valid_end_mjd"],
            created_at=as_utc(r["created_at"]) if r["created_at"] else None,
            cal_field=r["cal_field"],
            refant=r["refant"],
            notes=r["notes"],
        )
        for r in rows
    ]


def known_paths(bind: Bind, paths: Sequence[str]) -> set[str]:
    """The given paths that are registered (any status): what a scan need not read again."""
    if not paths:
        return set()
    t = CALTABLES
    with transaction(bind) as conn:
        return set(conn.execute(select(t.c.path).where(t.c.path.in_(list(paths)))).scalars())


def overlapping_active_sets(bind: Bind) -> list[Overlap]:
    """Every pair of active tables of one type, in different sets, whose windows overlap.

    Empty when the registry keeps its invariant; what an asset check reports otherwise.
    """
    a, b = aliased(Caltable, name="a"), aliased(Caltable, name="b")
    stmt = (
        select(
            a.table_type,
            a.set_name,
            a.path,
            a.valid_start_mjd,
            a.valid_end_mjd,
            b.set_name,
            b.path,
            b.valid_start_mjd,
            b.valid_end_mjd,
        )
        .join(b, and_(a.table_type == b.table_type, a.set_name < b.set_name))
        .where(
            a.status == "active",
            b.status == "active",
            a.valid_start_mjd < b.valid_end_mjd,
            b.valid_start_mjd < a.valid_end_mjd,
        )
        .order_by(a.table_type, a.valid_start_mjd, a.path, b.path)
    )
    with transaction(bind) as conn:
        rows = conn.execute(stmt).all()
    return [
        Overlap(
            table_type=r[0],
            first_set=r[1],
            first_path=r[2],
            first_window=(r[3], r[4]),
            second_set=r[5],
            second_path=r[6],
            second_window=(r[7], r[8]),
        )
        for r in rows
    ]


def newest_active_created_at(bind: Bind) -> dt.datetime | None:
    """When the newest active table was registered (UTC), None when none is active."""
    t = CALTABLES
    with transaction(bind) as conn:
        value = conn.execute(
            select(func.max(t.c.created_at)).where(t.c.status == "active")
        ).scalar_one_or_none()
    if value is None:
        return None
    if isinstance(value, str):  # SQLite returns an aggregate without its column's type
        value = dt.datetime.fromisoformat(value)
    return as_utc(value)


# --- lineage: which tables were applied to which measurement set ---------------------------------


def record_applied(bind: Bind, ms_path: str, caltable_ids: Sequence[int]) -> list[AppliedRecord]:
    """Record that exactly `caltable_ids` were applied to `ms_path`, replacing its old record.

    One transaction; refused (CalibrationConflictError, nothing written) when an id is unknown
    or its table is retired: a calibration recorded with a retired table would pass for a
    current one. An empty list clears the record of `ms_path`.
    """
    ids = sorted(set(caltable_ids))
    t = CALTABLES
    with transaction(bind) as conn:
        _lock_writers(conn)
        found = {
            row.id: row
            for row in conn.execute(
                select(t.c.id, t.c.path, t.c.set_name, t.c.table_type, t.c.status).where(
                    t.c.id.in_(ids)
                )
            )
        }
        unknown = [i for i in ids if i not in found]
        if unknown:
            raise CalibrationConflictError(
                f"{ms_path}: no calibration table with id {', '.join(map(str, unknown))}; "
                "nothing recorded"
            )
        retired = [found[i].path for i in ids if found[i].status != "active"]
        if retired:
            raise CalibrationConflictError(
                f"{ms_path}: calibration table {', '.join(retired)} is retired; nothing recorded"
            )
        conn.execute(delete(APPLIED).where(APPLIED.c.ms_path == ms_path))
        if ids:
            now = utcnow()
            conn.execute(
                insert(APPLIED),
                [
                    {
                        "ms_path": ms_path,
                        "caltable_id": i,
                        "set_name": found[i].set_name,
                        "table_type": found[i].table_type,
                        "applied_at": now,
                    }
                    for i in ids
                ],
            )
        return _applied(conn, [ms_path])[ms_path]


def _applied(conn: Connection, ms_paths: Sequence[str]) -> dict[str, list[AppliedRecord]]:
    t, ap = CALTABLES, APPLIED
    stmt = (
        select(
            ap.c.ms_path,
            ap.c.caltable_id,
            t.c.path,
            ap.c.table_type,
            t.c.apply_order,
            ap.c.set_name,
            t.c.status,
            ap.c.applied_at,
        )
        .join(t, t.c.id == ap.c.caltable_id)
        .where(ap.c.ms_path.in_(list(ms_paths)))
        .order_by(ap.c.ms_path, t.c.apply_order, t.c.path)
    )
    records: dict[str, list[AppliedRecord]] = {path: [] for path in ms_paths}
    for r in conn.execute(stmt):
        records[r.ms_path].append(
            AppliedRecord(
                ms_path=r.ms_path,
                caltable_id=r.caltable_id,
                path=r.path,
                table_type=r.table_type,
                apply_order=r.apply_order,
                set_name=r.set_name,
                status=r.status,
                applied_at=as_utc(r.applied_at) if r.applied_at else None,
            )
        )
    return records


def applied_to(bind: Bind, ms_paths: Sequence[str]) -> dict[str, list[AppliedRecord]]:
    """The tables recorded as applied to each measurement set (every path a key; [] if none),
    in apply order, each with its current status: a `retired` one marks a stale calibration."""
    if not ms_paths:
        return {}
    with transaction(bind) as conn:
        return _applied(conn, list(dict.fromkeys(ms_paths)))
