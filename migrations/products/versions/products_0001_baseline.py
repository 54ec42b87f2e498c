"""Baseline of the products database: images, image_qa, thumbnails, daily_stats, ms_index,
sources, photometry.

Revision ID: products_0001
Revises:
Create Date: 2026-11-29

What survives a downgrade of this revision: nothing; downgrading to base drops every table of
this database with its rows (take a backup first).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "products_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_stats",
        sa.Column("obs_date", sa.Date(), nullable=False),
        sa.Column("n_images", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_good", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_warn", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_fail", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_failed_parses", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rms_median_jy", sa.Double(), nullable=True),
        sa.Column("rms_p95_jy", sa.Double(), nullable=True),
        sa.Column("dr_median", sa.Double(), nullable=True),
        sa.Column("images_per_dec_strip", sa.JSON(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("obs_date", name=op.f("pk_daily_stats")),
    )
    op.create_table(
        "ms_index",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("field_name", sa.String(length=128), nullable=True),
        sa.Column("start_mjd", sa.Double(), nullable=True),
        sa.Column("end_mjd", sa.Double(), nullable=True),
        sa.Column("mid_mjd", sa.Double(), nullable=True),
        sa.Column("obs_date", sa.Date(), nullable=True),
        sa.Column("ra_deg", sa.Double(), nullable=True),
        sa.Column("dec_deg", sa.Double(), nullable=True),
        sa.Column("n_channels", sa.Integer(), nullable=True),
        sa.Column("n_subbands", sa.Integer(), nullable=True),
        sa.Column("hdf5_group", sa.String(length=32), nullable=True),
        sa.Column("calibrated", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("cal_set_name", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ms_index")),
        sa.UniqueConstraint("path", name=op.f("uq_ms_index_path")),
    )
    with op.batch_alter_table("ms_index", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ms_index_field_name_mid_mjd"), ["field_name", "mid_mjd"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ms_index_mid_mjd"), ["mid_mjd"], unique=False)
        batch_op.create_index(batch_op.f("ix_ms_index_obs_date"), ["obs_date"], unique=False)

    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("hdu_index", sa.Integer(), nullable=False),
        sa.Column("naxis", sa.JSON(), nullable=False),
        sa.Column("bitpix", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("ra_deg", sa.Double(), nullable=True),
        sa.Column("dec_deg", sa.Double(), nullable=True),
        sa.Column("cellsize_arcsec", sa.Double(), nullable=True),
        sa.Column("freq_hz", sa.Double(), nullable=True),
        sa.Column("bandwidth_hz", sa.Double(), nullable=True),
        sa.Column("stokes", sa.String(length=32), nullable=True),
        sa.Column("beam_major_arcsec", sa.Double(), nullable=True),
        sa.Column("beam_minor_arcsec", sa.Double(), nullable=True),
        sa.Column("beam_pa_deg", sa.Double(), nullable=True),
        sa.Column("date_obs", sa.DateTime(timezone=True), nullable=True),
        sa.Column("obs_date", sa.Date(), nullable=True),
        sa.Column("telescope", sa.String(length=64), nullable=True),
        sa.Column("object", sa.String(length=128), nullable=True),
        sa.Column("bunit", sa.String(length=32), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("ms_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["ms_id"], ["ms_index.id"], name=op.f("fk_images_ms_id_ms_index"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("path", name=op.f("uq_images_path")),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_dec_deg"), ["dec_deg"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_ms_id"), ["ms_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_obs_date"), ["obs_date"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_images_obs_date_dec_deg"), ["obs_date", "dec_deg"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_images_ra_deg"), ["ra_deg"], unique=False)

    op.create_table(
        "image_qa",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(length=8), nullable=False),
        sa.Column("rms_jy", sa.Double(), nullable=True),
        sa.Column("peak_jy", sa.Double(), nullable=True),
        sa.Column("dynamic_range", sa.Double(), nullable=True),
        sa.Column("nan_fraction", sa.Double(), nullable=True),
        sa.Column("n_pixels", sa.BigInteger(), nullable=True),
        sa.Column("beam_ok", sa.Boolean(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column(
            "computed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("source_fingerprint", sa.String(length=128), nullable=True),
        sa.CheckConstraint("grade IN ('good', 'warn', 'fail')", name=op.f("ck_image_qa_grade")),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_qa_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_qa")),
        sa.UniqueConstraint("image_id", name=op.f("uq_image_qa_image_id")),
    )
    with op.batch_alter_table("image_qa", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_qa_grade"), ["grade"], unique=False)

    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=True),
        sa.Column("ra_deg", sa.Double(), nullable=False),
        sa.Column("dec_deg", sa.Double(), nullable=False),
        sa.Column("ra_err_arcsec", sa.Double(), nullable=True),
        sa.Column("dec_err_arcsec", sa.Double(), nullable=True),
        sa.Column("peak_flux_jy", sa.Double(), nullable=True),
        sa.Column("peak_flux_err_jy", sa.Double(), nullable=True),
        sa.Column("int_flux_jy", sa.Double(), nullable=True),
        sa.Column("int_flux_err_jy", sa.Double(), nullable=True),
        sa.Column("major_arcsec", sa.Double(), nullable=True),
        sa.Column("minor_arcsec", sa.Double(), nullable=True),
        sa.Column("pa_deg", sa.Double(), nullable=True),
        sa.Column("snr", sa.Double(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_sources_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
    )
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sources_dec_deg_ra_deg"), ["dec_deg", "ra_deg"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_sources_image_id"), ["image_id"], unique=False)

    op.create_table(
        "thumbnails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("source_fingerprint", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_thumbnails_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thumbnails")),
        sa.UniqueConstraint("image_id", name=op.f("uq_thumbnails_image_id")),
    )
    op.create_table(
        "photometry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("ra_deg", sa.Double(), nullable=False),
        sa.Column("dec_deg", sa.Double(), nullable=False),
        sa.Column("mjd", sa.Double(), nullable=True),
        sa.Column("flux_jy", sa.Double(), nullable=True),
        sa.Column("flux_err_jy", sa.Double(), nullable=True),
        sa.Column("local_rms_jy", sa.Double(), nullable=True),
        sa.Column("forced", sa.Boolean(), server_default="1", nullable=False),
        sa.Column(
            "measured_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_photometry_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_photometry_source_id_sources"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photometry")),
    )
    with op.batch_alter_table("photometry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_photometry_image_id"), ["image_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_photometry_source_id_mjd"), ["source_id", "mjd"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("photometry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_photometry_source_id_mjd"))
        batch_op.drop_index(batch_op.f("ix_photometry_image_id"))

    op.drop_table("photometry")
    op.drop_table("thumbnails")
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sources_image_id"))
        batch_op.drop_index(batch_op.f("ix_sources_dec_deg_ra_deg"))

    op.drop_table("sources")
    with op.batch_alter_table("image_qa", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_qa_grade"))

    op.drop_table("image_qa")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_ra_deg"))
        batch_op.drop_index(batch_op.f("ix_images_obs_date_dec_deg"))
        batch_op.drop_index(batch_op.f("ix_images_obs_date"))
        batch_op.drop_index(batch_op.f("ix_images_ms_id"))
        batch_op.drop_index(batch_op.f("ix_images_dec_deg"))

    op.drop_table("images")
    with op.batch_alter_table("ms_index", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ms_index_obs_date"))
        batch_op.drop_index(batch_op.f("ix_ms_index_mid_mjd"))
        batch_op.drop_index(batch_op.f("ix_ms_index_field_name_mid_mjd"))

    op.drop_table("ms_index")
    op.drop_table("daily_stats")
