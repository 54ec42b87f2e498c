"""QA of one observation day: read each image's plane once, grade it, store the verdict.

An image whose pixels cannot be read still gets a QA row (grade `fail`, the read error as the
reason), so "every image has a QA row" holds and the failure is visible where people look.
Images whose file fingerprint and thresholds are unchanged since their last QA are skipped.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from assets.publishing import files
from assets.publishing import publish as publishing
from assets.qa.statistics import QAResult, QAThresholds, compute_stats, grade
from assets.thumbnails.render import thumbnail_relpath
from resources.database import Databases
from resources.errors import FITSParsingError
from resources.fits.pixels import read_plane
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


def _grade_one(image: ImageForProducts, thresholds: QAThresholds) -> tuple[dict, QAResult]:
    try:
        plane = read_plane(image.path, image.hdu_index)
    except (FITSParsingError, OSError) as exc:
        result = QAResult("fail", (f"pixels unreadable: {type(exc).__name__}: {exc}",))
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


def _beam_ok(image: ImageForProducts) -> bool:
    major, minor = image.beam_major_arcsec, image.beam_minor_arcsec
    return major is not None and minor is not None and 0 < minor <= major


def grade_day(
    dbs: Databases,
    day: dt.date,
    thresholds: QAThresholds,
    *,
    max_workers: int = 2,
    force: bool = False,
) -> GradingReport:
    report = GradingReport()
    files.sweep_stale([qa_report_dir() / day.isoformat()])
    publishing.sweep_publish_temps(day)
    with dbs.connect("products") as conn:
        images = images_of_day(conn, day)
    wanted = thresholds.to_dict()
    todo = [
        im
        for im in images
        if force or im.qa_fingerprint != im.fingerprint or im.qa_thresholds != wanted
    ]
    report.skipped_unchanged = len(images) - len(todo)
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="qa") as pool:
        results = list(pool.map(lambda im: _grade_one(im, thresholds), todo))
    rows = []
    refs = []
    now = utcnow()
    for image, (stats_row, result) in zip(todo, results, strict=True):
        rows.append(
            {
                "image_id": image.id,
                "grade": result.grade,
                **stats_row,
                "beam_ok": _beam_ok(image),
                "reasons": list(result.reasons),
                "thresholds": wanted,
                "computed_at": now,
                "source_fingerprint": image.fingerprint,
            }
        )
        report.grades[result.grade] += 1
        QA_GRADES.labels(grade=result.grade).inc()
        if stats_row["n_pixels"] is None:
            report.unreadable.append((image.path, result.reasons[0]))
        path, fingerprint = _write_report(image, day, stats_row, result)
        refs.append(publishing.ProductRef("qa", image.path, day, str(path), fingerprint))
    with dbs.begin("products") as conn:
        upsert_qa(conn, rows)
    report.graded = len(rows)
    IMAGES_PROCESSED.labels(asset="image_qa", outcome="ok").inc(len(rows))
    registry = dbs.engine("data_registry")
    publishing.register(registry, refs, restage=True)
    for image, (_, result) in zip(todo, results, strict=True):
        publishing.set_qa_status(
            registry, image.path, qa_status_from_grade(result.grade), fingerprint=image.fingerprint
        )
    summary = publishing.publish_ready(registry, [(im.path, day) for im in todo])
    report.published, report.left_in_staging = summary.published, summary.left_in_staging
    return report


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
