"""Add the UVH5 header fields to hdf5_files and the hdf5_failures table.

Revision ID: hdf5_0002
Revises: hdf5_0001
Create Date: 2026-12-02

`hdf5_files` gains what the header reader takes from each file (time range as MJD, frequency
range, channel, time and baseline-time counts), all nullable so existing rows stay valid.
`hdf5_failures` records the files whose header could not be read, with the error class and its
one-line message; a path is in one table or the other.

What survives a downgrade of this revision: every `hdf5_files` row with the columns of
hdf5_0001; the header fields and the whole `hdf5_failures` table (a list of unreadable files,
rebuilt by the next registration) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hdf5_0002"
down_revision: str | None = "hdf5_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEADER_COLUMNS: tuple[tuple[str, type[sa.types.TypeEngine[object]]], ...] = (
    ("start_mjd", sa.Double),
    ("end_mjd", sa.Double),
    ("freq_min_hz", sa.Double),
    ("freq_max_hz", sa.Double),
    ("n_freqs", sa.Integer),
    ("n_times", sa.Integer),
    ("n_blts", sa.Integer),
)


def upgrade() -> None:
    with op.batch_alter_table("hdf5_files", schema=None) as batch_op:
        for name, kind in HEADER_COLUMNS:
            batch_op.add_column(sa.Column(name, kind(), nullable=True))
    op.create_table(
        "hdf5_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("obs_date", sa.Date(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("error_class", sa.String(length=128), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column(
            "discovered_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hdf5_failures")),
        sa.UniqueConstraint("path", name=op.f("uq_hdf5_failures_path")),
    )
    with op.batch_alter_table("hdf5_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hdf5_failures_obs_date"), ["obs_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hdf5_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hdf5_failures_obs_date"))
    op.drop_table("hdf5_failures")
    with op.batch_alter_table("hdf5_files", schema=None) as batch_op:
        for name, _kind in reversed(HEADER_COLUMNS):
            batch_op.drop_column(name)
