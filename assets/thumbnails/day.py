"""Thumbnails of one observation day: render, write under the thumbnail dir, record; and the
day's contact sheet, worst QA grade first (docs/thumbnails.md).

A thumbnail is regenerated only when its image's fingerprint changed or the file is missing;
the PNG bytes are deterministic, so a regenerated identical thumbnail is not even rewritten.

Day previews (contact sheets, the rms plot) are written under ``preview_dir()``, not the
thumbnail directory: that one holds exactly one PNG per image, which operators and tests rely
on. The Dagster UI gets a small palette preview inline and the path of the full PNG.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from assets.publishing import files
from assets.publishing import publish as publishing
from assets.thumbnails.render import (
    FITS_SUFFIXES,
    SheetTile,
    compact_png,
    contact_sheet,
    render_thumbnail,
    thumbnail_relpath,
    write_thumbnail,
)
from resources.database import Databases
from resources.errors import FITSParsingError, ThumbnailError
from resources.fits.pixels import map_planes, read_plane
from resources.metrics import IMAGES_PROCESSED, THUMBNAILS_WRITTEN
from resources.models._common import utcnow
from resources.repositories.products import (
    ImageForProducts,
    ImageQADetail,
    images_of_day,
    qa_details_of_day,
    upsert_thumbnails,
)
from resources.settings import data_dir, thumbnail_dir


@dataclass
class ThumbnailReport:
    rendered: int = 0
    written: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sample: list[tuple[str, bytes]] = field(default_factory=list)
    folder: Path | None = None


@dataclass(frozen=True)
class RenderedThumbnail:
    """One image's thumbnail from its plane: the PNG (written to `dest` already), or why not."""

    image: ImageForProducts
    dest: Path
    png: bytes | None
    written: bool = False
    error: str | None = None


@dataclass(frozen=True)
class ThumbnailConsumer:
    """The thumbnail of one image given its plane (`resources.fits.pixels.map_planes`), written
    under `dests[image.path]` where the plane was read (the files' fsyncs overlap). A plain
    dataclass, so that a pass on worker processes can pickle it."""

    size: int
    dests: dict[str, Path]

    def __call__(
        self, image: ImageForProducts, plane: np.ndarray | None, unreadable: str | None
    ) -> RenderedThumbnail:
        dest = self.dests[image.path]
        if plane is None:
            return RenderedThumbnail(image, dest, None, error=unreadable)
        try:
            png = render_thumbnail(plane, size=self.size, source=image.path)
        except ThumbnailError as exc:  # a plane that cannot be drawn: this image is skipped
            return RenderedThumbnail(image, dest, None, error=f"{type(exc).__name__}: {exc}")
        # A file that cannot be written (a full disk) fails the step, as any other write does.
        return RenderedThumbnail(image, dest, png, written=write_thumbnail(png, dest))


def thumbnail_consumer(size: int, dests: dict[str, Path]) -> ThumbnailConsumer:
    return ThumbnailConsumer(size, dests)


def thumbnail_todo(
    images: list[ImageForProducts], day: dt.date
) -> tuple[dict[str, Path], list[ImageForProducts], list[ImageForProducts]]:
    """Where each image's thumbnail goes, those to render (new or changed content, or the file
    is gone) and those whose thumbnail is up to date."""
    base = thumbnail_dir()
    dests = {im.path: base / thumbnail_relpath(day, im.path) for im in images}
    todo, unchanged = [], []
    for im in images:
        current = im.thumb_fingerprint == im.fingerprint and dests[im.path].is_file()
        (unchanged if current else todo).append(im)
    return dests, todo, unchanged


def record_thumbnails(
    dbs: Databases,
    day: dt.date,
    rendered: list[RenderedThumbnail],
    *,
    unchanged: Sequence[ImageForProducts] = (),
    sample_size: int = 12,
    publish: bool = True,
) -> ThumbnailReport:
    """Record the rendered thumbnails (one transaction), register them as products, then publish
    what passed unless `publish=False` (the caller publishes the day once, after QA too)."""
    report = ThumbnailReport(folder=thumbnail_dir() / day.isoformat())
    report.unchanged = len(unchanged)
    for im in unchanged:
        if len(report.sample) >= sample_size:
            break
        dest = thumbnail_dir() / thumbnail_relpath(day, im.path)
        try:
            report.sample.append((Path(im.path).name, dest.read_bytes()))
        except OSError:
            continue  # removed meanwhile: the next run renders it again
    rows = []
    refs = []
    for item in rendered:
        image, png = item.image, item.png
        if png is None:
            report.skipped.append((image.path, item.error or "not rendered"))
            continue
        report.rendered += 1
        if item.written:
            report.written += 1
            THUMBNAILS_WRITTEN.inc()
        width, height = PILImage.open(io.BytesIO(png)).size
        rows.append(
            {
                "image_id": image.id,
                "path": str(item.dest),
                "width": width,
                "height": height,
                "source_fingerprint": image.fingerprint,
                "created_at": utcnow(),
            }
        )
        refs.append(
            publishing.ProductRef(
                "thumbnail", image.path, day, str(item.dest), publishing.bytes_fingerprint(png)
            )
        )
        if len(report.sample) < sample_size:
            report.sample.append((Path(image.path).name, png))
    with dbs.begin("products") as conn:
        upsert_thumbnails(conn, rows)
    IMAGES_PROCESSED.labels(asset="image_thumbnails", outcome="ok").inc(report.rendered)
    IMAGES_PROCESSED.labels(asset="image_thumbnails", outcome="skipped").inc(len(report.skipped))
    registry = dbs.engine("data_registry")
    publishing.register(registry, refs, restage=True)
    if publish:
        publishing.publish_ready(registry, [(r.image.path, day) for r in rendered])
    return report


def thumbnails_day(
    dbs: Databases,
    day: dt.date,
    *,
    size: int = 256,
    max_workers: int | None = None,
    sample_size: int = 12,
) -> ThumbnailReport:
    """Render the day's missing or out-of-date thumbnails (each plane read once, on
    `max_workers` threads, default `pixel_threads()`), record and publish them."""
    sweep_day(day)
    with dbs.connect("products") as conn:
        images = images_of_day(conn, day)
    dests, todo, unchanged = thumbnail_todo(images, day)
    results, _ = map_planes(
        todo,
        ImageForProducts.plane_location,
        [thumbnail_consumer(size, dests)],
        threads=max_workers,
    )
    return record_thumbnails(
        dbs, day, [r for (r,) in results], unchanged=unchanged, sample_size=sample_size
    )


def sweep_day(day: dt.date) -> files.SweepReport:
    """Remove what killed runs left half-written in the day's thumbnail, preview and publish
    folders (`assets.publishing.files`), before this run writes there."""
    report = files.sweep_stale([thumbnail_dir() / day.isoformat(), preview_dir() / day.isoformat()])
    published = publishing.sweep_publish_temps(day)
    report.removed += published.removed
    report.kept += published.kept
    return report


def sheet_of(report: ThumbnailReport) -> bytes:
    return contact_sheet(report.sample)


# --- the day's contact sheet, worst first ------------------------------------------------------

#: Tile order of a sheet: what needs a look comes first. Ungraded (or graded on older content)
#: sits between warn and good: unknown is not good.
_GRADE_RANK = {"fail": 0, "warn": 1, None: 2, "good": 3}
#: Inline previews: the first (worst) tiles, small, 16 grey levels (docs/thumbnails.md).
PREVIEW_TILES = 4
PREVIEW_TILE_PX = 96
PREVIEW_COLOURS = 16


def preview_dir() -> Path:
    """``<data dir>/day_previews``: the full-size day sheets and plots, one folder per day."""
    return data_dir() / "day_previews"


def tile_label(image_path: str, day: dt.date) -> str:
    """The image's file name without FITS suffix and without the day (the sheet is of one day).

    ``2025-10-01T02:00:00_dec+16.3.fits`` on 2025-10-01 reads ``02:00:00 dec+16.3``: the
    observation time and the declination strip, which is what tells tiles apart.
    """
    name = Path(image_path).name
    for suffix in FITS_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    prefix = f"{day.isoformat()}T"
    if name.startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix) :]
    return name.replace("_", " ")


def worst_first(details: list[ImageQADetail]) -> list[ImageQADetail]:
    """fail, warn, ungraded, good; by observation time within a grade (stale grades: ungraded)."""

    def key(d: ImageQADetail) -> tuple[int, str, str]:
        grade = d.grade if d.qa_current else None
        stamp = d.date_obs.isoformat() if d.date_obs else ""
        return _GRADE_RANK.get(grade, 2), stamp, d.path

    return sorted(details, key=key)


@dataclass
class DaySheet:
    """A day's contact sheet: the full PNG on disk and the inline preview."""

    png: bytes
    preview: bytes
    path: Path
    tiles: int
    graded_tiles: int
    missing: list[tuple[str, str]] = field(default_factory=list)  # (image, why no tile)


def _tile_png(detail: ImageQADetail, size: int) -> bytes | str:
    """The image's thumbnail file, else a thumbnail rendered now (QA may run before it)."""
    if detail.thumb_path:
        try:
            return Path(detail.thumb_path).read_bytes()
        except OSError:
            pass  # deleted or not yet written: render it below
    try:
        return render_thumbnail(
            read_plane(detail.path, detail.hdu_index), size=size, source=detail.path
        )
    except (FITSParsingError, ThumbnailError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _tile_of(detail: ImageQADetail, png: bytes, day: dt.date) -> SheetTile:
    if not detail.qa_current:
        return SheetTile(tile_label(detail.path, day), png)
    assert detail.grade is not None
    caption = detail.reasons[0] if detail.reasons else None
    return SheetTile(tile_label(detail.path, day), png, badge=detail.grade.upper(), caption=caption)


def day_sheet(
    dbs: Databases,
    day: dt.date,
    *,
    name: str,
    max_tiles: int = 12,
    size: int = 256,
    details: list[ImageQADetail] | None = None,
) -> DaySheet:
    """The day's contact sheet, worst QA grade first, each tile with its grade and first reason.

    Grades come from the products database (`details`: the day's `qa_details_of_day`, when the
    caller has read it already): after grading they are today's; a thumbnails-only run shows
    those of an earlier QA run when they are still current, else plain tiles in time order.
    Writes ``preview_dir()/<day>/<name>.png``.
    """
    if details is None:
        with dbs.connect("products") as conn:
            details = qa_details_of_day(conn, day)
    details = worst_first(details)
    tiles: list[SheetTile] = []
    missing: list[tuple[str, str]] = []
    for detail in details:
        if len(tiles) >= max_tiles:
            break
        png = _tile_png(detail, size)
        if isinstance(png, str):
            missing.append((detail.path, png))
            continue
        tiles.append(_tile_of(detail, png, day))
    sheet = contact_sheet(tiles, max_tiles=max_tiles)
    preview = compact_png(
        contact_sheet(tiles[:PREVIEW_TILES], tile=PREVIEW_TILE_PX, max_tiles=PREVIEW_TILES),
        colors=PREVIEW_COLOURS,
    )
    dest = write_preview(sheet, day, name)
    return DaySheet(
        png=sheet,
        preview=preview,
        path=dest,
        tiles=len(tiles),
        graded_tiles=sum(1 for t in tiles if t.badge),
        missing=missing,
    )


def write_preview(png: bytes, day: dt.date, name: str) -> Path:
    """Write a day preview atomically (unchanged bytes are not rewritten); return its path."""
    dest = preview_dir() / day.isoformat() / f"{name}.png"
    write_thumbnail(png, dest)
    return dest
