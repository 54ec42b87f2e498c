"""Schema of the `cal_registry` database: calibration tables, their validity windows, the
order in which they are applied, and which tables were applied to which measurement set.

Table definitions and file-name rules only; the queries ("which tables apply at MJD m?") live in
`resources.repositories.cal_registry`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import PurePath
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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


class CalibrationApplied(CalRegistryBase):
    """One calibration table applied to one measurement set (the lineage of a calibrated MS).

    The table's set and type are copied at recording time so that the record still reads right
    after the table is retired; `ondelete RESTRICT` keeps a table that was applied from being
    deleted behind the record's back.
    """

    __tablename__ = "calibration_applied"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ms_path: Mapped[str] = mapped_column(String(1024))
    caltable_id: Mapped[int] = mapped_column(ForeignKey("caltables.id", ondelete="RESTRICT"))
    set_name: Mapped[str] = mapped_column(String(128))
    table_type: Mapped[str] = mapped_column(String(8))
    applied_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("ms_path", "caltable_id"),
        Index(None, "ms_path"),
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
