"""Queries of the products database about the per-day statistics (`daily_stats`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from resources.errors import InvalidQueryError
from resources.models.products import DailyStats

DAILY = DailyStats.__table__


@dataclass(frozen=True)
class DailyStatsRow:
    obs_date: dt.date
    n_images: int
    n_good: int
    n_warn: int
    n_fail: int
    n_failed_parses: int
    rms_median_jy: float | None
    rms_p95_jy: float | None
    dr_median: float | None
    images_per_dec_strip: dict[str, int]
    updated_at: dt.datetime | None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> DailyStatsRow:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["images_per_dec_strip"] = dict(values["images_per_dec_strip"] or {})
        updated = values["updated_at"]
        if updated is not None:
            values["updated_at"] = (
                updated.replace(tzinfo=dt.UTC)
                if updated.tzinfo is None
                else updated.astimezone(dt.UTC)
            )
        return cls(**values)

    @property
    def n_ungraded(self) -> int:
        return max(0, self.n_images - self.n_good - self.n_warn - self.n_fail)

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["obs_date"] = self.obs_date.isoformat()
        out["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return out


def daily_stats(
    conn: Connection, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> list[DailyStatsRow]:
    """The statistics rows of observation days date_from..date_to (inclusive), oldest first."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise InvalidQueryError("date range", f"from {date_from} is after to {date_to}")
    stmt = select(DAILY).order_by(DAILY.c.obs_date)
    if date_from is not None:
        stmt = stmt.where(DAILY.c.obs_date >= date_from)
    if date_to is not None:
        stmt = stmt.where(DAILY.c.obs_date <= date_to)
    return [DailyStatsRow.from_mapping(row) for row in conn.execute(stmt).mappings()]
