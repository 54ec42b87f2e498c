"""Add images.mjd_obs, backfilled from date_obs.

Revision ID: products_0002
Revises: products_0001
Create Date: 2026-11-29

Rows written before this revision have date_obs but no MJD; the upgrade adds the column and
computes it in SQL for every row with a date_obs (MJD = days since 1858-11-17T00:00 UTC).

What survives a downgrade of this revision: every row of every table, with all its other
columns; only images.mjd_obs is dropped (it is recomputed from date_obs on the next upgrade).
On SQLite the downgrade rebuilds `images` (batch mode) with foreign keys switched off, so the
image_qa / thumbnails / sources / photometry rows that reference it are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "products_0002"
down_revision: str | None = "products_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = {
    # date_obs is stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) by SQLAlchemy on SQLite.
    "sqlite": "UPDATE images SET mjd_obs = julianday(date_obs) - 2400000.5 "
    "WHERE date_obs IS NOT NULL",
    "postgresql": "UPDATE images SET mjd_obs = EXTRACT(EPOCH FROM date_obs) / 86400.0 + 40587.0 "
    "WHERE date_obs IS NOT NULL",
}


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mjd_obs", sa.Double(), nullable=True))
    dialect = op.get_context().dialect.name
    if dialect not in BACKFILL:
        raise NotImplementedError(f"no mjd_obs backfill for the {dialect} dialect")
    op.execute(BACKFILL[dialect])


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("mjd_obs")
