"""Queries of the products database about images, their QA, thumbnails and daily statistics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from resources.fits.metadata import ImageMetadata
from resources.models._common import utcnow
from resources.models.products import DailyStats, Image, ImageQA, Thumbnail
from resources.repositories.upsert import upsert_rows

IMAGES = Image.__table__
QA = ImageQA.__table__
THUMBS = Thumbnail.__table__
DAILY = DailyStats.__table__


def image_row(meta: ImageMetadata) -> dict[str, Any]:
    """The `images` row of one metadata record (every field a real column)."""
    row = meta.to_json_dict()
    row["date_obs"] = meta.date_obs
    row["obs_date"] = meta.obs_date
    row["updated_at"] = utcnow()
    return row


def upsert_images(conn: Connection, metas: Sequence[ImageMetadata]) -> dict[str, int]:
    """Insert or refresh the rows of these files; return their ids by path."""
    # created_at is left to its column default: set on insert, never touched by the update.
    rows = [image_row(m) for m in metas]
    upsert_rows(conn, IMAGES, rows, key=["path"])
    return image_ids(conn, [m.path for m in metas])


def image_ids(conn: Connection, paths: Iterable[str]) -> dict[str, int]:
    wanted = list(paths)
    out: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = conn.execute(select(IMAGES.c.path, IMAGES.c.id).where(IMAGES.c.path.in_(chunk)))
        out.update({path: image_id for path, image_id in rows})
    return out


@dataclass(frozen=True)
class ImageForProducts:
    """What the thumbnail and QA assets need to know about one catalogued image."""

    id: int
    path: str
    obs_date: dt.date
    date_obs: dt.datetime | None
    hdu_index: int
    fingerprint: str
    dec_deg: float | None
    beam_major_arcsec: float | None
    beam_minor_arcsec: float | None
    beam_pa_deg: float | None
    qa_fingerprint: str | None
    qa_thresholds: dict[str, Any] | None
    thumb_fingerprint: str | None
    thumb_path: str | None


def images_of_day(conn: Connection, obs_date: dt.date) -> list[ImageForProducts]:
    """Every image of one observation day with the fingerprints of its existing products."""
    stmt = (
        select(
            IMAGES.c.id,
            IMAGES.c.path,
            IMAGES.c.obs_date,
            IMAGES.c.date_obs,
            IMAGES.c.hdu_index,
            IMAGES.c.fingerprint,
            IMAGES.c.dec_deg,
            IMAGES.c.beam_major_arcsec,
            IMAGES.c.beam_minor_arcsec,
            IMAGES.c.beam_pa_deg,
            QA.c.source_fingerprint.label("qa_fingerprint"),
            QA.c.thresholds.label("qa_thresholds"),
            THUMBS.c.source_fingerprint.label("thumb_fingerprint"),
            THUMBS.c.path.label("thumb_path"),
        )
        .select_from(
            IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id).outerjoin(
                THUMBS, THUMBS.c.image_id == IMAGES.c.id
            )
        )
        .where(IMAGES.c.obs_date == obs_date)
        .order_by(IMAGES.c.date_obs, IMAGES.c.path)
    )
    return [ImageForProducts(**row) for row in conn.execute(stmt).mappings()]


def upsert_qa(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    upsert_rows(conn, QA, list(rows), key=["image_id"])


def upsert_thumbnails(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    upsert_rows(conn, THUMBS, list(rows), key=["image_id"])


@dataclass(frozen=True)
class QAOfImage:
    image_id: int
    path: str
    date_obs: dt.datetime | None
    dec_deg: float | None
    has_beam: bool
    grade: str | None
    rms_jy: float | None
    dynamic_range: float | None


def qa_of_day(conn: Connection, obs_date: dt.date) -> list[QAOfImage]:
    """Each image of the day with its QA (grade None when the image has no QA row)."""
    stmt = (
        select(
            IMAGES.c.id.label("image_id"),
            IMAGES.c.path,
            IMAGES.c.date_obs,
            IMAGES.c.dec_deg,
            (
                IMAGES.c.beam_major_arcsec.is_not(None) & IMAGES.c.beam_minor_arcsec.is_not(None)
            ).label("has_beam"),
            QA.c.grade,
            QA.c.rms_jy,
            QA.c.dynamic_range,
        )
        .select_from(IMAGES.outerjoin(QA, QA.c.image_id == IMAGES.c.id))
        .where(IMAGES.c.obs_date == obs_date)
        .order_by(IMAGES.c.date_obs, IMAGES.c.path)
    )
    return [
        QAOfImage(**{**row, "has_beam": bool(row["has_beam"])})
        for row in conn.execute(stmt).mappings()
    ]


def count_images(conn: Connection, obs_date: dt.date | None = None) -> int:
    stmt = select(func.count()).select_from(IMAGES)
    if obs_date is not None:
        stmt = stmt.where(IMAGES.c.obs_date == obs_date)
    return int(conn.execute(stmt).scalar_one())


def upsert_daily_stats(conn: Connection, row: dict[str, Any]) -> None:
    upsert_rows(conn, DAILY, [{**row, "updated_at": utcnow()}], key=["obs_date"])
