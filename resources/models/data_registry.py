"""Schema of the `data_registry` database: one row per data product and its publication state.

status: staging -> publishing -> published. Only a product whose `qa_status` is `passed` is
auto-published (resources.repositories.data_registry.publish_if_passed); the others stay in
staging with a reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from resources.models._common import new_metadata, sql_in, utcnow

PRODUCT_STATUSES: tuple[str, ...] = ("staging", "publishing", "published")
QA_STATUSES: tuple[str, ...] = ("pending", "passed", "warn", "failed")
PRODUCT_TYPES: tuple[str, ...] = ("image", "qa", "thumbnail", "catalog", "ms", "caltable")


class DataRegistryBase(DeclarativeBase):
    metadata: MetaData = new_metadata()  # type: ignore[misc]


METADATA = DataRegistryBase.metadata


class DataProduct(DataRegistryBase):
    __tablename__ = "data_registry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_type: Mapped[str] = mapped_column(String(32))
    product_id: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="staging", server_default="staging")
    stage_path: Mapped[str | None] = mapped_column(String(1024))
    published_path: Mapped[str | None] = mapped_column(String(1024))
    qa_status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reason: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(PRODUCT_STATUSES)})", name="status"),
        CheckConstraint(f"qa_status IN ({sql_in(QA_STATUSES)})", name="qa_status"),
        CheckConstraint(
            "status <> 'published' OR published_path IS NOT NULL", name="published_has_path"
        ),
        Index(None, "status", "product_type"),
        Index(None, "qa_status"),
    )
