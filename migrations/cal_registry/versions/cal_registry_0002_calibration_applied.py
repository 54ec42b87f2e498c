"""calibration_applied: which calibration tables were applied to which measurement set.

Revision ID: cal_registry_0002
Revises: cal_registry_0001
Create Date: 2026-12-03

Why: `contimg cal record-applied` and the calibration asset record the lineage of a calibrated
measurement set (its tables, their set and type), so that a check can find measurement sets
calibrated with a table that was later retired. A new table only; `caltables` is unchanged.

Downgrade: drops `calibration_applied` with its rows (the lineage is lost; the caltables stay).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cal_registry_0002"
down_revision: str | None = "cal_registry_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calibration_applied",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ms_path", sa.String(length=1024), nullable=False),
        sa.Column("caltable_id", sa.Integer(), nullable=False),
        sa.Column("set_name", sa.String(length=128), nullable=False),
        sa.Column("table_type", sa.String(length=8), nullable=False),
        sa.Column(
            "applied_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["caltable_id"],
            ["caltables.id"],
            name=op.f("fk_calibration_applied_caltable_id_caltables"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_applied")),
        sa.UniqueConstraint(
            "ms_path", "caltable_id", name=op.f("uq_calibration_applied_ms_path_caltable_id")
        ),
    )
    op.create_index(
        op.f("ix_calibration_applied_ms_path"), "calibration_applied", ["ms_path"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_calibration_applied_ms_path"), table_name="calibration_applied")
    op.drop_table("calibration_applied")
