"""Sources: per-image extractions, measurements (blind and forced), sky sources, relations.

Revision ID: products_0004
Revises: products_0003
Create Date: 2026-12-02

Why: the baseline's `sources` (one row per detection in one image) and `photometry` (a flux at
a position) could not hold an association across epochs, and nothing wrote them. The source
assets (docs/sources.md) need, as the VAST pipeline has them: `measurements` (every blind or
forced measurement of one image, VAST's column names and units: degrees, mJy, arcsec), `sources`
(one row per sky source with its weighted position, flux statistics and variability metrics),
`source_relations` (what one association step could not tell apart) and `source_extractions`
(that extraction ran on an image, also when it found nothing).

Data: rows of the old tables are kept as measurements. An old `sources` row becomes a blind
measurement (fluxes Jy → mJy, errors arcsec → degrees), a `photometry` row a measurement with
its `forced` flag and its flux as both peak and integrated flux; neither is associated
(`source_id` NULL: the next run of its day associates it again).

Downgrade: blind measurements go back to the old `sources`, forced ones to `photometry` (their
association, shapes beyond the old columns, sky sources, relations and extraction records are
lost: the source assets rebuild them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "products_0004"
down_revision: str | None = "products_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_MEASUREMENT_COLUMNS = (
    "id", "image_id", "source_id", "forced", "obs_date", "mjd", "ra", "dec", "ra_err", "dec_err",
    "uncertainty_ew", "uncertainty_ns", "flux_peak", "flux_peak_err", "flux_int", "flux_int_err",
    "local_rms", "background", "bmaj", "bmin", "pa", "dc_bmaj", "dc_bmin", "dc_pa", "snr",
    "chi_squared_fit", "n_cluster", "flags", "x", "y", "d2d", "dr", "association", "in_stats",
    "measured_at",
)  # fmt: skip
_COLUMNS = ", ".join(_MEASUREMENT_COLUMNS)
_MEASUREMENT_INDEXES = (
    ("ix_measurements_dec_ra", ["dec", "ra"]),
    ("ix_measurements_image_id_forced", ["image_id", "forced"]),
    ("ix_measurements_obs_date", ["obs_date"]),
    ("ix_measurements_source_id_mjd", ["source_id", "mjd"]),
    ("ix_measurements_in_stats_source_id", ["in_stats", "source_id"]),
)


def _measurements_table(with_source_fk: bool, name: str = "measurements") -> None:
    constraints: list[sa.schema.SchemaItem] = [
        sa.CheckConstraint(
            "association IS NULL OR association IN ('new', 'basic', 'one-to-many', 'many-to-one')",
            name=op.f(f"ck_{name}_association"),
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f(f"fk_{name}_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    ]
    if with_source_fk:
        constraints.append(_source_fk())
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("forced", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("obs_date", sa.Date(), nullable=False),
        sa.Column("mjd", sa.Double(), nullable=True),
        sa.Column("ra", sa.Double(), nullable=False),
        sa.Column("dec", sa.Double(), nullable=False),
        *(
            sa.Column(name, sa.Double(), nullable=True)
            for name in (
                "ra_err",
                "dec_err",
                "uncertainty_ew",
                "uncertainty_ns",
                "flux_peak",
                "flux_peak_err",
                "flux_int",
                "flux_int_err",
                "local_rms",
                "background",
                "bmaj",
                "bmin",
                "pa",
                "dc_bmaj",
                "dc_bmin",
                "dc_pa",
                "snr",
                "chi_squared_fit",
            )
        ),
        sa.Column("n_cluster", sa.Integer(), nullable=True),
        sa.Column("flags", sa.Integer(), server_default="0", nullable=False),
        sa.Column("x", sa.Double(), nullable=True),
        sa.Column("y", sa.Double(), nullable=True),
        sa.Column("d2d", sa.Double(), nullable=True),
        sa.Column("dr", sa.Double(), nullable=True),
        sa.Column("association", sa.String(length=16), nullable=True),
        sa.Column("in_stats", sa.Boolean(), server_default="0", nullable=False),
        sa.Column(
            "measured_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        *constraints,
    )


def _source_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["source_id"],
        ["sources.id"],
        name=op.f("fk_measurements_source_id_sources"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "source_extractions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("source_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("n_sources", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rms_median_mjy", sa.Double(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=1024), nullable=True),
        sa.Column(
            "extracted_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_source_extractions_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_extractions")),
        sa.UniqueConstraint("image_id", name=op.f("uq_source_extractions_image_id")),
    )

    # The old rows go to a staging table first (the old `sources` must be dropped before the new
    # one of that name exists), then into `measurements`, created with all its constraints:
    # plain CREATE/INSERT/DROP statements, so that `--sql` (offline) works on SQLite too.
    _measurements_table(with_source_fk=False, name="measurements_0004_staging")
    op.execute(
        """
        INSERT INTO measurements_0004_staging (image_id, source_id, forced, obs_date, mjd, ra,
            dec, ra_err, dec_err, flux_peak, flux_peak_err, flux_int, flux_int_err, bmaj, bmin,
            pa, snr)
        SELECT s.image_id, NULL, false, i.obs_date, i.mjd_obs, s.ra_deg, s.dec_deg,
            s.ra_err_arcsec / 3600.0, s.dec_err_arcsec / 3600.0, s.peak_flux_jy * 1000.0,
            s.peak_flux_err_jy * 1000.0, s.int_flux_jy * 1000.0, s.int_flux_err_jy * 1000.0,
            s.major_arcsec, s.minor_arcsec, s.pa_deg, s.snr
        FROM sources s JOIN images i ON i.id = s.image_id
        WHERE i.obs_date IS NOT NULL
        """
    )
    op.execute(
        """
        INSERT INTO measurements_0004_staging (image_id, source_id, forced, obs_date, mjd, ra,
            dec, flux_peak, flux_peak_err, flux_int, flux_int_err, local_rms)
        SELECT p.image_id, NULL, p.forced, i.obs_date, COALESCE(p.mjd, i.mjd_obs), p.ra_deg,
            p.dec_deg, p.flux_jy * 1000.0, p.flux_err_jy * 1000.0, p.flux_jy * 1000.0,
            p.flux_err_jy * 1000.0, p.local_rms_jy * 1000.0
        FROM photometry p JOIN images i ON i.id = p.image_id
        WHERE i.obs_date IS NOT NULL
        """
    )
    op.drop_index(op.f("ix_photometry_source_id_mjd"), table_name="photometry")
    op.drop_index(op.f("ix_photometry_image_id"), table_name="photometry")
    op.drop_table("photometry")
    op.drop_index(op.f("ix_sources_image_id"), table_name="sources")
    op.drop_index(op.f("ix_sources_dec_deg_ra_deg"), table_name="sources")
    op.drop_table("sources")

    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("wavg_ra", sa.Double(), nullable=False),
        sa.Column("wavg_dec", sa.Double(), nullable=False),
        *(
            sa.Column(name, sa.Double(), nullable=True)
            for name in (
                "wavg_uncertainty_ew",
                "wavg_uncertainty_ns",
                "avg_flux_int",
                "avg_flux_peak",
                "max_flux_peak",
                "min_flux_peak",
                "max_flux_int",
                "min_flux_int",
                "min_snr",
                "max_snr",
            )
        ),
        sa.Column("n_meas", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_meas_forced", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_rel", sa.Integer(), server_default="0", nullable=False),
        *(
            sa.Column(name, sa.Double(), nullable=True)
            for name in (
                "v_int",
                "eta_int",
                "v_peak",
                "eta_peak",
                "vs_abs_significant_max_int",
                "m_abs_significant_max_int",
                "vs_abs_significant_max_peak",
                "m_abs_significant_max_peak",
            )
        ),
        sa.Column("new", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("new_high_sigma", sa.Double(), nullable=True),
        sa.Column("first_mjd", sa.Double(), nullable=True),
        sa.Column("last_mjd", sa.Double(), nullable=True),
        sa.Column("first_obs_date", sa.Date(), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
    )
    op.create_index(op.f("ix_sources_eta_int"), "sources", ["eta_int"], unique=False)
    op.create_index(op.f("ix_sources_first_obs_date"), "sources", ["first_obs_date"], unique=False)
    op.create_index(
        op.f("ix_sources_wavg_dec_wavg_ra"), "sources", ["wavg_dec", "wavg_ra"], unique=False
    )

    _measurements_table(with_source_fk=True)
    op.execute(
        f"INSERT INTO measurements ({_COLUMNS}) SELECT {_COLUMNS} FROM measurements_0004_staging"
    )
    op.drop_table("measurements_0004_staging")
    for name, columns in _MEASUREMENT_INDEXES:
        op.create_index(op.f(name), "measurements", columns, unique=False)

    op.create_table(
        "source_relations",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("related_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("obs_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["related_id"],
            ["sources.id"],
            name=op.f("fk_source_relations_related_id_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_source_relations_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", "related_id", name=op.f("pk_source_relations")),
    )
    op.create_index(
        op.f("ix_source_relations_obs_date"), "source_relations", ["obs_date"], unique=False
    )
    op.create_index(
        op.f("ix_source_relations_related_id"), "source_relations", ["related_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_source_relations_related_id"), table_name="source_relations")
    op.drop_index(op.f("ix_source_relations_obs_date"), table_name="source_relations")
    op.drop_table("source_relations")
    # The measurements to a staging table without the link to `sources`, so that the new
    # `sources` can go before the baseline's is made (plain statements: `--sql` works).
    for name, _columns in _MEASUREMENT_INDEXES:
        op.drop_index(op.f(name), table_name="measurements")
    _measurements_table(with_source_fk=False, name="measurements_0004_staging")
    op.execute(
        f"INSERT INTO measurements_0004_staging ({_COLUMNS}) SELECT {_COLUMNS} FROM measurements"
    )
    op.drop_table("measurements")
    op.drop_index(op.f("ix_sources_wavg_dec_wavg_ra"), table_name="sources")
    op.drop_index(op.f("ix_sources_first_obs_date"), table_name="sources")
    op.drop_index(op.f("ix_sources_eta_int"), table_name="sources")
    op.drop_table("sources")

    # The baseline's tables (products_0001), filled back from the measurements.
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
    op.create_index(
        op.f("ix_sources_dec_deg_ra_deg"), "sources", ["dec_deg", "ra_deg"], unique=False
    )
    op.create_index(op.f("ix_sources_image_id"), "sources", ["image_id"], unique=False)
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
    op.create_index(op.f("ix_photometry_image_id"), "photometry", ["image_id"], unique=False)
    op.create_index(
        op.f("ix_photometry_source_id_mjd"), "photometry", ["source_id", "mjd"], unique=False
    )
    op.execute(
        """
        INSERT INTO sources (image_id, ra_deg, dec_deg, ra_err_arcsec, dec_err_arcsec,
            peak_flux_jy, peak_flux_err_jy, int_flux_jy, int_flux_err_jy, major_arcsec,
            minor_arcsec, pa_deg, snr)
        SELECT image_id, ra, dec, ra_err * 3600.0, dec_err * 3600.0, flux_peak / 1000.0,
            flux_peak_err / 1000.0, flux_int / 1000.0, flux_int_err / 1000.0, bmaj, bmin, pa, snr
        FROM measurements_0004_staging WHERE NOT forced
        """
    )
    op.execute(
        """
        INSERT INTO photometry (image_id, source_id, ra_deg, dec_deg, mjd, flux_jy, flux_err_jy,
            local_rms_jy, forced)
        SELECT image_id, NULL, ra, dec, mjd, flux_peak / 1000.0, flux_peak_err / 1000.0,
            local_rms / 1000.0, true
        FROM measurements_0004_staging WHERE forced
        """
    )
    op.drop_table("measurements_0004_staging")
    op.drop_table("source_extractions")
