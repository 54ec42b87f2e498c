"""Baseline of the ingest database: ingest_queue (without error_class, added by ingest_0002).

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-29

What survives a downgrade of this revision: nothing; downgrading to base drops every table of
this database with its rows (take a backup first).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("obs_date", sa.Date(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "discovered_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'in_progress', 'completed', 'failed')",
            name=op.f("ck_ingest_queue_state"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_ingest_queue_attempts_nonnegative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_queue")),
        sa.UniqueConstraint("path", name=op.f("uq_ingest_queue_path")),
    )
    with op.batch_alter_table("ingest_queue", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ingest_queue_state_obs_date"), ["state", "obs_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ingest_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_queue_state_obs_date"))

    op.drop_table("ingest_queue")
