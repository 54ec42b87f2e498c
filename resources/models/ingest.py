"""Schema of the `ingest` database: the queue of discovered files and their processing state.

State machine (enforced by a CHECK constraint on the vocabulary and by
`resources.repositories.ingest` on the transitions)::

    pending --claim--> in_progress --mark_completed--> completed
       ^                   |  \\--mark_failed--> failed
       |                   |                       |
       +--requeue_stale----+                       |
       +--retry_failed-----------------------------+
       +--register_files (the file is back)-- missing <--mark_missing-- in_progress, completed

A file whose size or mtime changes goes back to `pending` from any state (register_files).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
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

INGEST_STATES: tuple[str, ...] = ("pending", "in_progress", "completed", "failed", "missing")


class IngestBase(DeclarativeBase):
    metadata: MetaData = new_metadata()  # type: ignore[misc]


METADATA = IngestBase.metadata


class IngestQueueEntry(IngestBase):
    __tablename__ = "ingest_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    obs_date: Mapped[dt.date | None] = mapped_column(Date)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # Added by revision ingest_0002 (backfilled from "ClassName: message" in last_error).
    error_class: Mapped[str | None] = mapped_column(String(128))
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    discovered_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"state IN ({sql_in(INGEST_STATES)})", name="state"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
        Index(None, "state", "obs_date"),
    )
