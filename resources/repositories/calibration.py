"""Queries of the cal_registry database: "which tables apply at MJD m?" and the registered sets.

`applylist` is `resources.models.cal_registry.active_caltables_at` (the one implementation of the
selection rule: newest active set whose window, widened by ±12 h, covers m), under the name the
CLI uses.
"""

from __future__ import annotations

import math

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from resources.errors import InvalidQueryError
from resources.models.cal_registry import Caltable, CaltableRecord, active_caltables_at

CALTABLES = Caltable.__table__
DEFAULT_WINDOW_HOURS = 12.0


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
