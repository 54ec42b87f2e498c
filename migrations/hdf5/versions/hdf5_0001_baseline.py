"""Baseline of the hdf5 database: hdf5_files.

Revision ID: hdf5_0001
Revises:
Create Date: 2026-11-29

What survives a downgrade of this revision: nothing; downgrading to base drops every table of
this database with its rows (take a backup first).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hdf5_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hdf5_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("subband", sa.Integer(), nullable=False),
        sa.Column("timestamp_iso", sa.String(length=32), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mjd", sa.Double(), nullable=False),
        sa.Column("group_id", sa.String(length=32), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("ra_deg", sa.Double(), nullable=True),
        sa.Column("dec_deg", sa.Double(), nullable=True),
        sa.Column(
            "discovered_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "subband >= 0 AND subband < 16", name=op.f("ck_hdf5_files_subband_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hdf5_files")),
        sa.UniqueConstraint("path", name=op.f("uq_hdf5_files_path")),
    )
    with op.batch_alter_table("hdf5_files", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hdf5_files_group_id_subband"), ["group_id", "subband"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_hdf5_files_mjd"), ["mjd"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hdf5_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hdf5_files_mjd"))
        batch_op.drop_index(batch_op.f("ix_hdf5_files_group_id_subband"))

    op.drop_table("hdf5_files")
