"""QA of one observation day: grade each image from its plane, store the verdicts.

The plane comes from a pixel pass (`resources.fits.pixels.map_planes`) that the thumbnails may
share: `qa_consumer` is what QA does with it, `record_grades` what is stored afterwards in a
few transactions for the whole day; `grade_day` is both for QA alone.

An image whose pixels cannot be read still gets a QA row (grade `fail`, the read error as the
reason), so "every image has a QA row" holds and the failure is visible where people look.
Images whose file fingerprint and thresholds are unchanged since their last QA are skipped.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assets.publishing import files
from assets.publishing import publish as publishing
from assets.qa.statistics import QAResult, QAThresholds, compute_stats, grade
from assets.thumbnails.render import thumbnail_relpath
from resources.database import Databases
from resources.fits.pixels import map_planes
from resources.metrics import IMAGES_PROCESSED, QA_GRADES
from resources.models._common import utcnow
from resources.repositories.data_registry import qa_status_from_grade
from resources.repositories.products import ImageForProducts, images_of_day, upsert_qa
from resources.settings import under_data_dir


def qa_report_dir() -> Path:
    return under_data_dir("CONTIMG_QA_REPORT_DIR", "qa_reports")


@dataclass
class GradingReport:
    graded: int = 0
    skipped_unchanged: int = 0
    grades: dict[str, int] = field(default_factory=lambda: {"good": 0, "warn": 0, "fail": 0})
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    published: int = 0
    left_in_staging: int = 0


@dataclass(frozen=True)
class GradedImage:
    """One image's QA, computed from its plane: the `image_qa` columns, the verdict and the
    report file already written (its path and fingerprint)."""

    image: ImageForProducts
    stats_row: dict
    result: QAResult
    report_path: Path
    report_fingerprint: str


def _measure(
    image: ImageForProducts,
    plane: np.ndarray | None,
    unreadable: str | None,
    thresholds: QAThresholds,
) -> tuple[dict, QAResult]:
    if plane is None:
        result = QAResult("fail", (f"pixels unreadable: {unreadable}",))
        row = {"rms_jy": None, "peak_jy": None, "dynamic_range": None, "nan_fraction": None}
        row["n_pixels"] = None
        return row, result
    stats = compute_stats(plane, source=image.path)
    result = grade(
        stats, image.beam_major_arcsec, image.beam_minor_arcsec, image.beam_pa_deg, thresholds
    )
    row = {
        "rms_jy": stats.rms,
        "peak_jy": stats.peak,
        "dynamic_range": stats.dynamic_range,
        "nan_fraction": stats.nan_fraction,
        "n_pixels": stats.n_pixels,
    }
    return row, result


@dataclass(frozen=True)
class QAConsumer:
    """The QA of one image given its plane (`resources.fits.pixels.map_planes`): statistics,
    grade and the report file, written where the plane was read (the files' fsyncs overlap).
    A plain dataclass, so that a pass on worker processes can pickle it."""

    day: dt.date
    thresholds: QAThresholds

    def __call__(
        self, image: ImageForProducts, plane: np.ndarray | None, unreadable: str | None
    ) -> GradedImage:
        stats_row, result = _measure(image, plane, unreadable, self.thresholds)
        path, fingerprint = _write_report(image, self.day, stats_row, result)
        return GradedImage(image, stats_row, result, path, fingerprint)


def qa_consumer(day: dt.date, thresholds: QAThresholds) -> QAConsumer:
    return QAConsumer(day, thresholds)


def _beam_ok(image: ImageForProducts) -> bool:
    major, minor = image.beam_major_arcsec, image.beam_minor_arcsec
    return major is not None and minor is not None and 0 < minor <= major


def qa_todo(
    images: list[ImageForProducts], thresholds: QAThresholds, *, force: bool = False
) -> list[ImageForProducts]:
    """The images whose QA is missing or out of date (content or thresholds changed)."""
    wanted = thresholds.to_dict()
    return [
        im
        for im in images
        if force or im.qa_fingerprint != im.fingerprint or im.qa_thresholds != wanted
    ]


def sweep_reports(day: dt.date) -> None:
    """Remove what killed runs left half-written among the day's QA reports."""
    files.sweep_stale([qa_report_dir() / day.isoformat()])


def record_grades(
    dbs: Databases,
    day: dt.date,
    graded: list[GradedImage],
    thresholds: QAThresholds,
    *,
    skipped_unchanged: int = 0,
    publish: bool = True,
) -> GradingReport:
    """Store the verdicts (one transaction), register the reports and carry each verdict to the
    image's products (one transaction each), then publish what passed unless `publish=False`
    (the caller publishes the day's products once, after its thumbnails too)."""
    report = GradingReport(skipped_unchanged=skipped_unchanged)
    wanted = thresholds.to_dict()
    rows = []
    refs = []
    now = utcnow()
    for item in graded:
        image, result = item.image, item.result
        rows.append(
            {
                "image_id": image.id,
                "grade": result.grade,
                **item.stats_row,
                "beam_ok": _beam_ok(image),
                "reasons": list(result.reasons),
                "thresholds": wanted,
                "computed_at": now,
                "source_fingerprint": image.fingerprint,
            }
        )
        report.grades[result.grade] += 1
        QA_GRADES.labels(grade=result.grade).inc()
        if item.stats_row["n_pixels"] is None:
            report.unreadable.append((image.path, result.reasons[0]))
        refs.append(
            publishing.ProductRef(
                "qa", image.path, day, str(item.report_path), item.report_fingerprint
            )
        )
    with dbs.begin("products") as conn:
        upsert_qa(conn, rows)
    report.graded = len(rows)
    IMAGES_PROCESSED.labels(asset="image_qa", outcome="ok").inc(len(rows))
    registry = dbs.engine("data_registry")
    publishing.register(registry, refs, restage=True)
    publishing.set_qa_statuses(
        registry,
        [(g.image.path, qa_status_from_grade(g.result.grade), g.image.fingerprint) for g in graded],
    )
    if publish:
        summary = publishing.publish_ready(registry, [(g.image.path, day) for g in graded])
        report.published, report.left_in_staging = summary.published, summary.left_in_staging
    return report


def grade_day(
    dbs: Databases,
    day: dt.date,
    thresholds: QAThresholds,
    *,
    max_workers: int | None = None,
    force: bool = False,
) -> GradingReport:
    """Grade the day's images whose QA is out of date (each plane read once, on
    `max_workers` threads, default `pixel_threads()`), store and publish."""
    sweep_reports(day)
    publishing.sweep_publish_temps(day)
    with dbs.connect("products") as conn:
        images = images_of_day(conn, day)
    todo = qa_todo(images, thresholds, force=force)
    results, _ = map_planes(
        todo,
        ImageForProducts.plane_location,
        [qa_consumer(day, thresholds)],
        threads=max_workers,
    )
    return record_grades(
        dbs,
        day,
        [graded for (graded,) in results],
        thresholds,
        skipped_unchanged=len(images) - len(todo),
    )


def qa_report_path(day: dt.date, image_path: str) -> Path:
    """``<QA report dir>/<day>/<image stem>-<path digest>.qa.json``.

    Named after the image's path (as its thumbnail is, `thumbnail_relpath`), not its database
    id: a catalogue rebuilt after the database was recreated gives the image a new id, and an
    id in the name left the old report beside the new one.
    """
    thumb = thumbnail_relpath(day, image_path)
    return qa_report_dir() / day.isoformat() / f"{thumb.stem}.qa.json"


def _drop_legacy_reports(dest: Path, image_path: str) -> None:
    """Reports of this image named by earlier versions (`<file name>.<image id>.qa.json`): the
    report of a database gone; the one written now replaces them."""
    legacy = re.compile(re.escape(Path(image_path).name) + r"\.\d+\.qa\.json")
    for old in dest.parent.glob(f"{glob.escape(Path(image_path).name)}.*.qa.json"):
        if legacy.fullmatch(old.name):
            old.unlink(missing_ok=True)


def _write_report(
    image: ImageForProducts, day: dt.date, stats_row: dict, result: QAResult
) -> tuple[Path, str]:
    """The QA report product: a small JSON file per image, next to nothing of the input.

    Returns its path and fingerprint (what the published copy must match).
    """
    dest = qa_report_path(day, image.path)
    body = {"image": image.path, "fingerprint": image.fingerprint, **result.to_dict(), **stats_row}
    data = json.dumps(body, indent=1, sort_keys=True, default=str).encode()
    files.atomic_write_bytes(dest, data)
    _drop_legacy_reports(dest, image.path)
    return dest, publishing.bytes_fingerprint(data)
