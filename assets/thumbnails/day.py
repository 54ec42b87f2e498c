"""Thumbnails of one observation day: render, write under the thumbnail dir, record.

A thumbnail is regenerated only when its image's fingerprint changed or the file is missing;
the PNG bytes are deterministic, so a regenerated identical thumbnail is not even rewritten.
"""

from __future__ import annotations

import datetime as dt
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image as PILImage

from assets.publishing import publish as publishing
from assets.thumbnails.render import (
    contact_sheet,
    render_thumbnail,
    thumbnail_relpath,
    write_thumbnail,
)
from resources.database import Databases
from resources.errors import FITSParsingError, ThumbnailError
from resources.fits.pixels import read_plane
from resources.metrics import IMAGES_PROCESSED, THUMBNAILS_WRITTEN
from resources.models._common import utcnow
from resources.repositories.products import ImageForProducts, images_of_day, upsert_thumbnails
from resources.settings import thumbnail_dir


@dataclass
class ThumbnailReport:
    rendered: int = 0
    written: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sample: list[tuple[str, bytes]] = field(default_factory=list)
    folder: Path | None = None


def _render_one(image: ImageForProducts, size: int) -> bytes | str:
    try:
        plane = read_plane(image.path, image.hdu_index)
        return render_thumbnail(plane, size=size, source=image.path)
    except (FITSParsingError, ThumbnailError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


def thumbnails_day(
    dbs: Databases,
    day: dt.date,
    *,
    size: int = 256,
    max_workers: int = 2,
    sample_size: int = 12,
) -> ThumbnailReport:
    report = ThumbnailReport()
    base = thumbnail_dir()
    report.folder = base / day.isoformat()
    with dbs.connect("products") as conn:
        images = images_of_day(conn, day)
    todo = []
    for im in images:
        dest = base / thumbnail_relpath(day, im.path)
        if im.thumb_fingerprint == im.fingerprint and dest.is_file():
            report.unchanged += 1
            if len(report.sample) < sample_size:
                report.sample.append((Path(im.path).name, dest.read_bytes()))
        else:
            todo.append((im, dest))
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="thumb") as pool:
        rendered = list(pool.map(lambda item: _render_one(item[0], size), todo))
    rows = []
    refs = []
    for (image, dest), png in zip(todo, rendered, strict=True):
        if isinstance(png, str):
            report.skipped.append((image.path, png))
            continue
        report.rendered += 1
        if write_thumbnail(png, dest):
            report.written += 1
            THUMBNAILS_WRITTEN.inc()
        width, height = PILImage.open(io.BytesIO(png)).size
        rows.append(
            {
                "image_id": image.id,
                "path": str(dest),
                "width": width,
                "height": height,
                "source_fingerprint": image.fingerprint,
                "created_at": utcnow(),
            }
        )
        refs.append(publishing.ProductRef("thumbnail", image.path, day, str(dest)))
        if len(report.sample) < sample_size:
            report.sample.append((Path(image.path).name, png))
    with dbs.begin("products") as conn:
        upsert_thumbnails(conn, rows)
    IMAGES_PROCESSED.labels(asset="image_thumbnails", outcome="ok").inc(report.rendered)
    IMAGES_PROCESSED.labels(asset="image_thumbnails", outcome="skipped").inc(len(report.skipped))
    registry = dbs.engine("data_registry")
    publishing.register(registry, refs, restage=True)
    publishing.publish_ready(registry, [(im.path, day) for im, _ in todo])
    return report


def sheet_of(report: ThumbnailReport) -> bytes:
    return contact_sheet(report.sample)
