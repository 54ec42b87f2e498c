"""Schema of the `products` database: images, their QA, thumbnails, daily statistics, the
measurement-set index, detected sources and their photometry.

ON DELETE choices (docs/schemas.md explains them for operators):
- `image_qa`, `thumbnails`, `sources`: CASCADE from `images`. They are derived from one image and
  mean nothing without it; deleting an image row (file withdrawn) removes its derived rows.
- `photometry.image_id`: CASCADE (a measurement made on a deleted image is gone with it);
  `photometry.source_id`: SET NULL, so a measurement survives when its catalogue source is
  re-identified or removed (it can be re-associated later).
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


class MeasurementSet(ProductsBase):
    """One calibrated measurement set the imager consumed (indexed by path, time and field)."""

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

    __table_args__ = (
        Index(None, "mid_mjd"),
        Index(None, "field_name", "mid_mjd"),
        Index(None, "obs_date"),
    )


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


class Source(ProductsBase):
    """A source detected in one image (source finder output)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(64))
    ra_deg: Mapped[float] = mapped_column(Double)
    dec_deg: Mapped[float] = mapped_column(Double)
    ra_err_arcsec: Mapped[float | None] = mapped_column(Double)
    dec_err_arcsec: Mapped[float | None] = mapped_column(Double)
    peak_flux_jy: Mapped[float | None] = mapped_column(Double)
    peak_flux_err_jy: Mapped[float | None] = mapped_column(Double)
    int_flux_jy: Mapped[float | None] = mapped_column(Double)
    int_flux_err_jy: Mapped[float | None] = mapped_column(Double)
    major_arcsec: Mapped[float | None] = mapped_column(Double)
    minor_arcsec: Mapped[float | None] = mapped_column(Double)
    pa_deg: Mapped[float | None] = mapped_column(Double)
    snr: Mapped[float | None] = mapped_column(Double)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    __table_args__ = (
        Index(None, "image_id"),
        Index(None, "dec_deg", "ra_deg"),
    )


class Photometry(ProductsBase):
    """A flux measurement of one source position on one image (forced or blind)."""

    __tablename__ = "photometry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id", ondelete="SET NULL"))
    ra_deg: Mapped[float] = mapped_column(Double)
    dec_deg: Mapped[float] = mapped_column(Double)
    mjd: Mapped[float | None] = mapped_column(Double)
    flux_jy: Mapped[float | None] = mapped_column(Double)
    flux_err_jy: Mapped[float | None] = mapped_column(Double)
    local_rms_jy: Mapped[float | None] = mapped_column(Double)
    forced: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    measured_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )

    __table_args__ = (
        Index(None, "image_id"),
        Index(None, "source_id", "mjd"),
    )


IMAGE_METADATA_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ImageMetadata))


def image_values(metadata: ImageMetadata) -> dict[str, Any]:
    """Column values of an `images` row for one parsed file (JSON columns get lists)."""
    values = {name: getattr(metadata, name) for name in IMAGE_METADATA_FIELDS}
    values["naxis"] = list(metadata.naxis)
    values["warnings"] = list(metadata.warnings)
    return values
