"""Everything that reads the cal_registry database: "which tables apply at MJD m?" and the
registered sets.

`active_caltables_at` is the one implementation of the selection rule (newest active set whose
window, widened by ±12 h, covers m); `applylist` is the same query under the name the CLI uses,
with its arguments checked. The table definitions stay in `resources.models.cal_registry`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from resources.errors import InvalidQueryError
from resources.models.cal_registry import Caltable

CALTABLES = Caltable.__table__
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
