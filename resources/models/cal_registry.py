"""Schema of the `cal_registry` database: calibration tables, their validity windows and the
order in which they are applied, plus the query "which tables apply at MJD m?".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    and_,
    func,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from resources.errors import FileNameError
from resources.models._common import new_metadata, sql_in, utcnow

CALTABLE_STATUSES: tuple[str, ...] = ("active", "retired")

# File-name suffix -> (table type, apply order). Longest suffixes are tried first.
CALTABLE_SUFFIXES: dict[str, tuple[str, int]] = {
    "_kcal": ("K", 10),
    "_bacal": ("BA", 20),
    "_bpcal": ("BP", 30),
    "_gacal": ("GA", 40),
    "_gpcal": ("GP", 50),
    "_2gcal": ("2G", 60),
    "_flux.cal": ("FLUX", 70),
}
APPLY_ORDER: dict[str, int] = {kind: order for kind, order in CALTABLE_SUFFIXES.values()}
CALTABLE_TYPES: tuple[str, ...] = tuple(APPLY_ORDER)


class CalRegistryBase(DeclarativeBase):
    metadata: MetaData = new_metadata()  # type: ignore[misc]


METADATA = CalRegistryBase.metadata


class Caltable(CalRegistryBase):
    __tablename__ = "caltables"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_name: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    table_type: Mapped[str] = mapped_column(String(8))
    apply_order: Mapped[int] = mapped_column(Integer)
    cal_field: Mapped[str | None] = mapped_column(String(128))
    refant: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    valid_start_mjd: Mapped[float] = mapped_column(Double)
    valid_end_mjd: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    notes: Mapped[str | None] = mapped_column(Text)
    source_ms_path: Mapped[str | None] = mapped_column(String(1024))
    solver_command: Mapped[str | None] = mapped_column(Text)
    solver_version: Mapped[str | None] = mapped_column(String(64))
    solver_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    quality_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(CALTABLE_STATUSES)})", name="status"),
        CheckConstraint(f"table_type IN ({sql_in(CALTABLE_TYPES)})", name="table_type"),
        CheckConstraint("valid_end_mjd >= valid_start_mjd", name="valid_window"),
        Index(None, "set_name"),
        Index(None, "status", "valid_start_mjd", "valid_end_mjd"),
    )


def caltable_type_from_path(path: str | PurePath) -> tuple[str, int]:
    """(table type, apply order) from a calibration table's file name suffix.

    Raises FileNameError naming the path when the suffix is none of the known ones, because
    registering a table we cannot order would silently change the calibration.
    """
    name = PurePath(str(path).rstrip("/")).name
    for suffix in sorted(CALTABLE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return CALTABLE_SUFFIXES[suffix]
    raise FileNameError(
        path,
        "unknown calibration table suffix",
        hint="Name it <name><suffix> with one of: " + ", ".join(CALTABLE_SUFFIXES) + ".",
    )


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
