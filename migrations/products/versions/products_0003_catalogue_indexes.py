"""Indexes for the catalogue queries: (dec_deg, ra_deg) replaces (dec_deg); add (date_obs).

Revision ID: products_0003
Revises: products_0002
Create Date: 2026-11-29

Why (docs/catalogue.md, "Index design"; numbers in docs/performance.md):
- A cone search filters a Dec band and an RA window. DSA-110 observes a few declination strips,
  so the Dec band alone selects a third of the table; SQLite's planner has no range statistics
  and picks the Dec index anyway. With (dec_deg, ra_deg) the RA window is tested on the index
  entries and only the rows inside the cone's box are fetched (about 14x faster at 100k rows on
  SQLite; PostgreSQL uses the same index). The old single-column (dec_deg) index is a prefix of
  the new one, so it is dropped.
- (date_obs) serves the default listing (newest first, limit N) and date-ordered pages without
  sorting the whole table.

Only indexes change: a downgrade restores the previous indexes and loses no data.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "products_0003"
down_revision: str | None = "products_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_images_dec_deg_ra_deg", "images", ["dec_deg", "ra_deg"], unique=False)
    op.create_index("ix_images_date_obs", "images", ["date_obs"], unique=False)
    op.drop_index("ix_images_dec_deg", table_name="images")


def downgrade() -> None:
    op.create_index("ix_images_dec_deg", "images", ["dec_deg"], unique=False)
    op.drop_index("ix_images_date_obs", table_name="images")
    op.drop_index("ix_images_dec_deg_ra_deg", table_name="images")
