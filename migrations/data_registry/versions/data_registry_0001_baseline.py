"""Baseline of the data_registry database: data_registry.

Revision ID: data_registry_0001
Revises:
Create Date: 2026-11-29

What survives a downgrade of this revision: nothing; downgrading to base drops every table of
this database with its rows (take a backup first).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "data_registry_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_registry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_type", sa.String(length=32), nullable=False),
        sa.Column("product_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="staging", nullable=False),
        sa.Column("stage_path", sa.String(length=1024), nullable=True),
        sa.Column("published_path", sa.String(length=1024), nullable=True),
        sa.Column("qa_status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "qa_status IN ('pending', 'passed', 'warn', 'failed')",
            name=op.f("ck_data_registry_qa_status"),
        ),
        sa.CheckConstraint(
            "status <> 'published' OR published_path IS NOT NULL",
            name=op.f("ck_data_registry_published_has_path"),
        ),
        sa.CheckConstraint(
            "status IN ('staging', 'publishing', 'published')", name=op.f("ck_data_registry_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_registry")),
        sa.UniqueConstraint("product_id", name=op.f("uq_data_registry_product_id")),
    )
    with op.batch_alter_table("data_registry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_registry_qa_status"), ["qa_status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_data_registry_status_product_type"),
            ["status", "product_type"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("data_registry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_registry_status_product_type"))
        batch_op.drop_index(batch_op.f("ix_data_registry_qa_status"))

    op.drop_table("data_registry")
