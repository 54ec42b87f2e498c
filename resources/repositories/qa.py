"""Queries of the products database about QA grades (DESIGN.md §4: good / warn / fail)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from resources.models.products import QA_GRADES, Image, ImageQA

IMAGES = Image.__table__
QA = ImageQA.__table__


@dataclass(frozen=True)
class QARecord:
    """The QA row of one image, reasons included."""

    image_id: int
    grade: str
    rms_jy: float | None
    peak_jy: float | None
    dynamic_range: float | None
    nan_fraction: float | None
    n_pixels: int | None
    beam_ok: bool | None
    reasons: list[str]
    thresholds: dict[str, Any]
    computed_at: dt.datetime | None
    source_fingerprint: str | None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> QARecord:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["reasons"] = list(values["reasons"] or [])
        values["thresholds"] = dict(values["thresholds"] or {})
        values["beam_ok"] = None if values["beam_ok"] is None else bool(values["beam_ok"])
        computed = values["computed_at"]
        if computed is not None:
            # SQLite returns naive UTC; PostgreSQL aware in the session's zone.
            values["computed_at"] = (
                computed.replace(tzinfo=dt.UTC)
                if computed.tzinfo is None
                else computed.astimezone(dt.UTC)
            )
        return cls(**values)

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["computed_at"] = self.computed_at.isoformat() if self.computed_at else None
        return out


def qa_for_image(conn: Connection, image_id: int) -> QARecord | None:
    row = conn.execute(select(QA).where(QA.c.image_id == image_id)).mappings().first()
    return QARecord.from_mapping(row) if row is not None else None


def grade_counts(
    conn: Connection, date_from: dt.date | None = None, date_to: dt.date | None = None
) -> dict[str, int]:
    """Images per grade over observation days (inclusive), `ungraded` for images without QA."""
    stmt = (
        select(QA.c.grade, func.count())
        .select_from(IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id))
        .group_by(QA.c.grade)
    )
    if date_from is not None:
        stmt = stmt.where(IMAGES.c.obs_date >= date_from)
    if date_to is not None:
        stmt = stmt.where(IMAGES.c.obs_date <= date_to)
    out = {**dict.fromkeys(QA_GRADES, 0), "ungraded": 0}
    for grade, n in conn.execute(stmt):
        out[grade if grade is not None else "ungraded"] = int(n)
    return out
