"""The measurement-set index is written: stage, spectral windows, change detection, failures.

Revision ID: products_0005
Revises: products_0004
Create Date: 2026-12-03

Why: the baseline's `ms_index` was never written. Indexing the measurement sets under
CONTIMG_MS_DIRS (docs/upstream.md, "Measurement sets") needs, per MS, how far it got (`stage`:
converted, calibrated, imaged), its spectral windows, rows and reference frequency, whether it
holds CORRECTED_DATA, and its size and `table.dat` mtime, so that an unchanged MS is only
stat'ed (`stage` holds one of the three words; its one writer is
`resources.repositories.products.refresh_ms_stages`, and it has no CHECK constraint so that
SQLite can add the column in place, which keeps `db upgrade --dry-run` able to print the SQL);
`hdf5_group` gets an index for the lineage query (image → MS → subband group). A
directory that cannot be read is recorded in `ms_failures`, never half-indexed.

Data: existing rows keep their values; `stage` becomes `imaged` where an image refers to the MS,
`calibrated` where `calibrated` was set, else `converted`.

Downgrade: drops `ms_failures` and the new columns (the stage is derived again by the next scan).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "products_0005"
down_revision: str | None = "products_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NULLABLE_COLUMNS: tuple[tuple[str, type[sa.types.TypeEngine]], ...] = (
    ("n_spw", sa.Integer),
    ("n_rows", sa.BigInteger),
    ("ref_freq_hz", sa.Double),
    ("size_bytes", sa.BigInteger),
    ("mtime_ns", sa.BigInteger),
)


def upgrade() -> None:
    with op.batch_alter_table("ms_index", schema=None) as batch_op:
        for name, kind in _NULLABLE_COLUMNS[:3]:
            batch_op.add_column(sa.Column(name, kind(), nullable=True))
        batch_op.add_column(
            sa.Column("has_corrected_data", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("stage", sa.String(length=16), server_default="converted", nullable=False)
        )
        for name, kind in _NULLABLE_COLUMNS[3:]:
            batch_op.add_column(sa.Column(name, kind(), nullable=True))
        batch_op.create_index(batch_op.f("ix_ms_index_hdf5_group"), ["hdf5_group"], unique=False)
    op.execute(
        "UPDATE ms_index SET stage = CASE "
        "WHEN EXISTS (SELECT 1 FROM images WHERE images.ms_id = ms_index.id) THEN 'imaged' "
        "WHEN calibrated THEN 'calibrated' ELSE 'converted' END"
    )
    op.create_table(
        "ms_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("obs_date", sa.Date(), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ms_failures")),
        sa.UniqueConstraint("path", name=op.f("uq_ms_failures_path")),
    )
    with op.batch_alter_table("ms_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ms_failures_obs_date"), ["obs_date"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ms_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ms_failures_obs_date"))
    op.drop_table("ms_failures")
    with op.batch_alter_table("ms_index", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ms_index_hdf5_group"))
        for name in ("mtime_ns", "size_bytes", "stage", "has_corrected_data"):
            batch_op.drop_column(name)
        for name, _kind in reversed(_NULLABLE_COLUMNS[:3]):
            batch_op.drop_column(name)
