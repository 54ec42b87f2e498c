"""Baseline of the cal_registry database: caltables.

Revision ID: cal_registry_0001
Revises:
Create Date: 2026-11-29

What survives a downgrade of this revision: nothing; downgrading to base drops every table of
this database with its rows (take a backup first).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cal_registry_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "caltables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_name", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("table_type", sa.String(length=8), nullable=False),
        sa.Column("apply_order", sa.Integer(), nullable=False),
        sa.Column("cal_field", sa.String(length=128), nullable=True),
        sa.Column("refant", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("valid_start_mjd", sa.Double(), nullable=False),
        sa.Column("valid_end_mjd", sa.Double(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("source_ms_path", sa.String(length=1024), nullable=True),
        sa.Column("solver_command", sa.Text(), nullable=True),
        sa.Column("solver_version", sa.String(length=64), nullable=True),
        sa.Column("solver_params", sa.JSON(), nullable=True),
        sa.Column("quality_metrics", sa.JSON(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'retired')", name=op.f("ck_caltables_status")),
        sa.CheckConstraint(
            "table_type IN ('K', 'BA', 'BP', 'GA', 'GP', '2G', 'FLUX')",
            name=op.f("ck_caltables_table_type"),
        ),
        sa.CheckConstraint(
            "valid_end_mjd >= valid_start_mjd", name=op.f("ck_caltables_valid_window")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_caltables")),
        sa.UniqueConstraint("path", name=op.f("uq_caltables_path")),
    )
    with op.batch_alter_table("caltables", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_caltables_set_name"), ["set_name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_caltables_status_valid_start_mjd_valid_end_mjd"),
            ["status", "valid_start_mjd", "valid_end_mjd"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("caltables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_caltables_status_valid_start_mjd_valid_end_mjd"))
        batch_op.drop_index(batch_op.f("ix_caltables_set_name"))

    op.drop_table("caltables")
