"""Schema of the `products` database: images, their QA, thumbnails, daily statistics, the
measurement-set index, and the sources: per-image extractions, measurements (blind and forced),
sky sources with their variability, and the relations the association could not resolve.

ON DELETE choices (docs/schemas.md explains them for operators):
- `image_qa`, `thumbnails`, `source_extractions`, `measurements`: CASCADE from `images`. They
  are derived from one image and mean nothing without it; deleting an image row (file
  withdrawn) removes its derived rows.
- `measurements.source_id`: CASCADE. A sky source is removed only when no blind detection is
  left for it (a day re-measured); its forced measurements were made because it existed.
- `images.ms_id`: SET NULL. An image records the measurement set it was made from when known;
  pruning old MS index rows must never delete images.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from resources.fits.metadata import ImageMetadata
from resources.models._common import new_metadata, sql_in, utcnow

QA_GRADES: tuple[str, ...] = ("good", "warn", "fail")


class ProductsBase(DeclarativeBase):
    metadata: MetaData = new_metadata()  # type: ignore[misc]


METADATA = ProductsBase.metadata

PATH_LENGTH = 1024


MS_STAGES: tuple[str, ...] = ("converted", "calibrated", "imaged")


class MeasurementSet(ProductsBase):
    """One measurement set under CONTIMG_MS_DIRS, indexed by path, time and field.

    `stage` is how far it got: `converted` (it exists), `calibrated` (a CORRECTED_DATA column, or
    calibration recorded as applied to it), `imaged` (an image links to it). `hdf5_group` is the
    subband group it was converted from (the ISO timestamp its name starts with); `n_subbands`
    the files that group holds when it is registered, `n_spw` the spectral windows in the MS.
    Columns after `created_at` were added by products_0005.
    """

    __tablename__ = "ms_index"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), unique=True)
    field_name: Mapped[str | None] = mapped_column(String(128))
    start_mjd: Mapped[float | None] = mapped_column(Double)
    end_mjd: Mapped[float | None] = mapped_column(Double)
    mid_mjd: Mapped[float | None] = mapped_column(Double)
    obs_date: Mapped[dt.date | None] = mapped_column(Date)
    ra_deg: Mapped[float | None] = mapped_column(Double)
    dec_deg: Mapped[float | None] = mapped_column(Double)
    n_channels: Mapped[int | None] = mapped_column(Integer)
    n_subbands: Mapped[int | None] = mapped_column(Integer)
    hdf5_group: Mapped[str | None] = mapped_column(String(32))
    calibrated: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    cal_set_name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    n_spw: Mapped[int | None] = mapped_column(Integer)
    n_rows: Mapped[int | None] = mapped_column(BigInteger)
    ref_freq_hz: Mapped[float | None] = mapped_column(Double)
    has_corrected_data: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    stage: Mapped[str] = mapped_column(String(16), default="converted", server_default="converted")
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)

    # No CHECK on `stage` (products_0005 says why); its one writer is refresh_ms_stages.
    __table_args__ = (
        Index(None, "mid_mjd"),
        Index(None, "field_name", "mid_mjd"),
        Index(None, "obs_date"),
        Index(None, "hdf5_group"),
    )


class MsFailure(ProductsBase):
    """A `*.ms` directory under CONTIMG_MS_DIRS that could not be read (products_0005).

    Kept apart from `ms_index` so that a damaged MS never looks indexed, and so that an
    operator can list a day's failures with their reason (`contimg ms failed`).
    """

    __tablename__ = "ms_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), unique=True)
    # The date in the name when it parses, else the UTC date of the mtime (the night it landed).
    obs_date: Mapped[dt.date | None] = mapped_column(Date)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    error_class: Mapped[str] = mapped_column(String(128))
    error: Mapped[str] = mapped_column(Text)
    discovered_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    __table_args__ = (Index(None, "obs_date"),)


class Image(ProductsBase):
    """One FITS image; the columns mirror `ImageMetadata` field by field."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(128))
    hdu_index: Mapped[int] = mapped_column(Integer)
    naxis: Mapped[list[int]] = mapped_column(JSON)
    bitpix: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    ra_deg: Mapped[float | None] = mapped_column(Double)
    dec_deg: Mapped[float | None] = mapped_column(Double)
    cellsize_arcsec: Mapped[float | None] = mapped_column(Double)
    freq_hz: Mapped[float | None] = mapped_column(Double)
    bandwidth_hz: Mapped[float | None] = mapped_column(Double)
    stokes: Mapped[str | None] = mapped_column(String(32))
    beam_major_arcsec: Mapped[float | None] = mapped_column(Double)
    beam_minor_arcsec: Mapped[float | None] = mapped_column(Double)
    beam_pa_deg: Mapped[float | None] = mapped_column(Double)
    date_obs: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Added by revision products_0002 (backfilled from date_obs for rows that existed before).
    mjd_obs: Mapped[float | None] = mapped_column(Double)
    obs_date: Mapped[dt.date | None] = mapped_column(Date)
    telescope: Mapped[str | None] = mapped_column(String(64))
    object: Mapped[str | None] = mapped_column(String(128))
    bunit: Mapped[str | None] = mapped_column(String(32))
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    ms_id: Mapped[int | None] = mapped_column(
        ForeignKey("ms_index.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    # products_0003: (dec_deg, ra_deg) replaced (dec_deg), (date_obs) added, for the catalogue
    # queries (docs/catalogue.md, "Index design").
    __table_args__ = (
        Index(None, "obs_date"),
        Index(None, "obs_date", "dec_deg"),
        Index(None, "dec_deg", "ra_deg"),
        Index(None, "ra_deg"),
        Index(None, "date_obs"),
    )


class ImageQA(ProductsBase):
    """The QA grade of one image (docs/qa.md): one row per image, replaced on re-grading."""

    __tablename__ = "image_qa"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    grade: Mapped[str] = mapped_column(String(8))
    rms_jy: Mapped[float | None] = mapped_column(Double)
    peak_jy: Mapped[float | None] = mapped_column(Double)
    dynamic_range: Mapped[float | None] = mapped_column(Double)
    nan_fraction: Mapped[float | None] = mapped_column(Double)
    n_pixels: Mapped[int | None] = mapped_column(BigInteger)
    beam_ok: Mapped[bool | None] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    computed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    source_fingerprint: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        CheckConstraint(f"grade IN ({sql_in(QA_GRADES)})", name="grade"),
        Index(None, "grade"),
    )


class Thumbnail(ProductsBase):
    """The PNG preview of one image (docs/thumbnails.md)."""

    __tablename__ = "thumbnails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    source_fingerprint: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class DailyStats(ProductsBase):
    """Per observation day counts and noise summary (one row per daily partition)."""

    __tablename__ = "daily_stats"

    obs_date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    n_images: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_good: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_warn: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_fail: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_failed_parses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rms_median_jy: Mapped[float | None] = mapped_column(Double)
    rms_p95_jy: Mapped[float | None] = mapped_column(Double)
    dr_median: Mapped[float | None] = mapped_column(Double)
    images_per_dec_strip: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


ASSOCIATION_KINDS: tuple[str, ...] = ("new", "basic", "one-to-many", "many-to-one")


class SourceExtraction(ProductsBase):
    """That blind extraction ran on one image, with what and on which version of the file.

    One row per image, even when nothing was found: the check "every graded image extracted"
    and the change detection (the image's fingerprint) need to tell "no sources" from "not done".
    """

    __tablename__ = "source_extractions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    source_fingerprint: Mapped[str | None] = mapped_column(String(128))
    n_sources: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rms_median_mjy: Mapped[float | None] = mapped_column(Double)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(String(1024))
    extracted_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )


class Source(ProductsBase):
    """A sky source: the measurements of one object across images (VAST's `source` table).

    Column names and units follow the VAST pipeline (positions in degrees, fluxes in mJy), so
    that astronomers can compare the two directly. `state` holds the running sums of the
    weighted position (`pos`) and the statistics' running state (`var`:
    `assets.sources.variability.VariabilityState`), so that a day's update reads the day's new
    measurements, not the source's history.
    """

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    wavg_ra: Mapped[float] = mapped_column(Double)
    wavg_dec: Mapped[float] = mapped_column(Double)
    wavg_uncertainty_ew: Mapped[float | None] = mapped_column(Double)
    wavg_uncertainty_ns: Mapped[float | None] = mapped_column(Double)
    avg_flux_int: Mapped[float | None] = mapped_column(Double)
    avg_flux_peak: Mapped[float | None] = mapped_column(Double)
    max_flux_peak: Mapped[float | None] = mapped_column(Double)
    min_flux_peak: Mapped[float | None] = mapped_column(Double)
    max_flux_int: Mapped[float | None] = mapped_column(Double)
    min_flux_int: Mapped[float | None] = mapped_column(Double)
    min_snr: Mapped[float | None] = mapped_column(Double)
    max_snr: Mapped[float | None] = mapped_column(Double)
    n_meas: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_meas_forced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_rel: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    v_int: Mapped[float | None] = mapped_column(Double)
    eta_int: Mapped[float | None] = mapped_column(Double)
    v_peak: Mapped[float | None] = mapped_column(Double)
    eta_peak: Mapped[float | None] = mapped_column(Double)
    vs_abs_significant_max_int: Mapped[float | None] = mapped_column(Double)
    m_abs_significant_max_int: Mapped[float | None] = mapped_column(Double)
    vs_abs_significant_max_peak: Mapped[float | None] = mapped_column(Double)
    m_abs_significant_max_peak: Mapped[float | None] = mapped_column(Double)
    new: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    new_high_sigma: Mapped[float | None] = mapped_column(Double)
    first_mjd: Mapped[float | None] = mapped_column(Double)
    last_mjd: Mapped[float | None] = mapped_column(Double)
    first_obs_date: Mapped[dt.date | None] = mapped_column(Date)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    # (wavg_dec, wavg_ra): the cone search, as for images; eta/v: the candidate lists.
    __table_args__ = (
        Index(None, "wavg_dec", "wavg_ra"),
        Index(None, "first_obs_date"),
        Index(None, "eta_int"),
    )


class Measurement(ProductsBase):
    """One measurement of a source on one image, blind (extracted) or forced (VAST's
    `measurement`): positions in degrees, fluxes in mJy, shapes in arcsec.

    `source_id` is set by the association; CASCADE: a sky source removed (its only blind
    detections re-measured away) takes its forced measurements with it.
    """

    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    forced: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    obs_date: Mapped[dt.date] = mapped_column(Date)
    mjd: Mapped[float | None] = mapped_column(Double)
    ra: Mapped[float] = mapped_column(Double)
    dec: Mapped[float] = mapped_column(Double)
    ra_err: Mapped[float | None] = mapped_column(Double)
    dec_err: Mapped[float | None] = mapped_column(Double)
    uncertainty_ew: Mapped[float | None] = mapped_column(Double)
    uncertainty_ns: Mapped[float | None] = mapped_column(Double)
    flux_peak: Mapped[float | None] = mapped_column(Double)
    flux_peak_err: Mapped[float | None] = mapped_column(Double)
    flux_int: Mapped[float | None] = mapped_column(Double)
    flux_int_err: Mapped[float | None] = mapped_column(Double)
    local_rms: Mapped[float | None] = mapped_column(Double)
    background: Mapped[float | None] = mapped_column(Double)
    bmaj: Mapped[float | None] = mapped_column(Double)
    bmin: Mapped[float | None] = mapped_column(Double)
    pa: Mapped[float | None] = mapped_column(Double)
    dc_bmaj: Mapped[float | None] = mapped_column(Double)
    dc_bmin: Mapped[float | None] = mapped_column(Double)
    dc_pa: Mapped[float | None] = mapped_column(Double)
    snr: Mapped[float | None] = mapped_column(Double)
    chi_squared_fit: Mapped[float | None] = mapped_column(Double)
    n_cluster: Mapped[int | None] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    x: Mapped[float | None] = mapped_column(Double)
    y: Mapped[float | None] = mapped_column(Double)
    d2d: Mapped[float | None] = mapped_column(Double)
    dr: Mapped[float | None] = mapped_column(Double)
    association: Mapped[str | None] = mapped_column(String(16))
    # Counted in its source's running statistics (`sources.state["var"]`): the daily update
    # reads only the measurements not yet counted.
    in_stats: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    measured_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    # (source_id, mjd): a light curve; (image_id, forced): a day's re-run; (obs_date): a day's
    # measurements; (dec, ra): a cone search over measurements; (in_stats, source_id): the
    # measurements a source's statistics have not counted yet.
    __table_args__ = (
        CheckConstraint(
            f"association IS NULL OR association IN ({sql_in(ASSOCIATION_KINDS)})",
            name="association",
        ),
        Index(None, "source_id", "mjd"),
        Index(None, "image_id", "forced"),
        Index(None, "obs_date"),
        Index(None, "dec", "ra"),
        Index(None, "in_stats", "source_id"),
    )


class SourceRelation(ProductsBase):
    """Two sky sources that one association step could not tell apart (VAST's `relations`):
    a source that matched several measurements of one image (one-to-many: the farther ones
    started new sources) or a measurement that matched several sources (many-to-one)."""

    __tablename__ = "source_relations"

    source_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    related_id: Mapped[int] = mapped_column(
        ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    obs_date: Mapped[dt.date] = mapped_column(Date)

    __table_args__ = (Index(None, "related_id"), Index(None, "obs_date"))


IMAGE_METADATA_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ImageMetadata))


def image_values(metadata: ImageMetadata) -> dict[str, Any]:
    """Column values of an `images` row for one parsed file (JSON columns get lists)."""
    values = {name: getattr(metadata, name) for name in IMAGE_METADATA_FIELDS}
    values["naxis"] = list(metadata.naxis)
    values["warnings"] = list(metadata.warnings)
    return values
