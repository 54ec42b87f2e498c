"""QA and thumbnails of one observation day from one read of each plane, then batched writes.

The day's images that need a new grade, a new thumbnail or both are read once each
(`resources.fits.pixels.map_planes`, one thread per CPU: QA and thumbnails run without the
GIL; one worker process per CPU when the pass also fits sources, which holds it); there each
image gets its statistics, grade and QA report file, its thumbnail file and its sources. Then, for the whole day: the `image_qa` rows in one transaction, the
`thumbnails` rows in another, the products registered, the QA verdicts carried to them, and one
publication of everything that passed (`assets.publishing.publish.publish_ready`). Each phase's
wall time is recorded, so every materialization can say where its time went.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np

from assets.publishing import publish as publishing
from assets.qa.grading import (
    GradedImage,
    GradingReport,
    QAConsumer,
    qa_consumer,
    qa_todo,
    record_grades,
    sweep_reports,
)
from assets.qa.statistics import QAThresholds
from assets.sources.day import (
    ExtractedImage,
    ExtractionReport,
    extraction_consumer,
    needs_extraction,
    record_extractions,
)
from assets.sources.extraction import ExtractionConfig
from assets.thumbnails.day import (
    RenderedThumbnail,
    ThumbnailConsumer,
    ThumbnailReport,
    record_thumbnails,
    sweep_day,
    thumbnail_consumer,
    thumbnail_todo,
)
from resources.database import Databases
from resources.fits.pixels import PlaneTimes, map_planes, pixel_threads
from resources.repositories.products import ImageForProducts, images_of_day


@dataclass
class _DayWork:
    """The pass's work on one image, in the order that matters: QA first (its grade decides
    whether to extract), the thumbnail, then the sources. A plain dataclass whose bound methods
    are the consumers, so a pass on worker processes pickles it with them; each worker then
    keeps the grades of the images it graded, which is all its extraction asks for."""

    to_grade: frozenset[str]
    render: frozenset[str]
    stale: frozenset[str]
    grade: QAConsumer
    draw: ThumbnailConsumer
    grades: dict[str, str | None] = field(default_factory=dict)

    def graded(self, im: ImageForProducts) -> str | None:
        return self.grades.get(im.path, im.grade)

    def extract_wanted(self, im: ImageForProducts) -> bool:
        # im.grade is the stored grade from before this pass
        return self.graded(im) in ("good", "warn") and (im.path in self.stale or im.grade == "fail")

    def qa_part(
        self, im: ImageForProducts, plane: np.ndarray | None, why: str | None
    ) -> GradedImage | None:
        if im.path not in self.to_grade:
            return None
        result = self.grade(im, plane, why)
        self.grades[im.path] = result.result.grade
        return result

    def thumb_part(
        self, im: ImageForProducts, plane: np.ndarray | None, why: str | None
    ) -> RenderedThumbnail | None:
        return self.draw(im, plane, why) if im.path in self.render else None


@dataclass
class DayPass:
    """What one day's pass did and where its wall time went (seconds per phase)."""

    day: dt.date
    images: int = 0
    planes_read: int = 0
    threads: int = 1
    qa: GradingReport | None = None
    thumbnails: ThumbnailReport | None = None
    sources: ExtractionReport | None = None
    phases: dict[str, float] = field(default_factory=dict)
    cpu: PlaneTimes | None = None

    @property
    def seconds(self) -> float:
        return sum(self.phases.values())

    def metadata(self) -> dict:
        """Images per second of the pass and its phases, for the materializations' metadata."""
        total = self.seconds
        cpu = self.cpu or PlaneTimes()
        return {
            "pass_images": self.planes_read,
            "pass_images_per_s": round(self.planes_read / total, 2) if total > 0 else 0.0,
            "pass_threads": self.threads,
            "pass_phases_s": {k: round(v, 3) for k, v in self.phases.items()},
            # summed over the threads: the work itself, without waiting
            "pass_thread_seconds": {
                "read": round(cpu.read_s, 3),
                "qa": round(cpu.consumers_s[0], 3) if cpu.consumers_s else 0.0,
                "thumbnail": round(cpu.consumers_s[1], 3) if len(cpu.consumers_s) > 1 else 0.0,
                "sources": round(cpu.consumers_s[2], 3) if len(cpu.consumers_s) > 2 else 0.0,
            },
        }


def products_day(
    dbs: Databases,
    day: dt.date,
    *,
    qa: bool,
    thumbnails: bool,
    thresholds: QAThresholds,
    size: int = 256,
    force: bool = False,
    threads: int | None = None,
    sources: bool = False,
    extraction: ExtractionConfig | None = None,
    force_sources: bool = False,
) -> DayPass:
    """Grade (`qa`), preview (`thumbnails`) and extract the sources of (`sources`) the day's
    images that need it, one read each. Extraction follows the grade given in the same pass:
    an image graded `fail` is not extracted."""
    out = DayPass(day=day, threads=threads or pixel_threads())
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        out.phases[name] = out.phases.get(name, 0.0) + now - clock
        clock = now

    sweep_day(day)
    if qa:
        sweep_reports(day)
    with dbs.connect("products") as conn:
        images = images_of_day(conn, day)
    out.images = len(images)
    to_grade = {im.path for im in qa_todo(images, thresholds, force=force)} if qa else set()
    dests, to_render, unchanged = thumbnail_todo(images, day) if thumbnails else ({}, [], [])
    render = {im.path for im in to_render}
    extraction = extraction or ExtractionConfig()
    # Extraction is due where the file or the settings changed, or where the grade may cross
    # `fail` (the image is graded again in this pass); it needs the plane either way.
    stale = {im.path for im in images if needs_extraction(im, extraction, force=force_sources)}
    to_extract = (stale | to_grade) if sources else set()
    needed = [
        im for im in images if im.path in to_grade or im.path in render or im.path in to_extract
    ]
    phase("list")

    work = _DayWork(
        to_grade=frozenset(to_grade),
        render=frozenset(render),
        stale=frozenset(stale),
        grade=qa_consumer(day, thresholds),
        draw=thumbnail_consumer(size, dests),
    )
    extract = extraction_consumer(extraction, work.extract_wanted)
    consumers = (
        [work.qa_part, work.thumb_part, extract] if sources else [work.qa_part, work.thumb_part]
    )
    results, out.cpu = map_planes(
        needed,
        ImageForProducts.plane_location,
        consumers,
        threads=out.threads,
        holds_gil=bool(sources and to_extract),
    )
    # The grades given in the pass (on threads or in worker processes), for what follows.
    for r in results:
        if r[0] is not None:
            work.grades[r[0].image.path] = r[0].result.grade
    graded = work.graded
    out.planes_read = len(needed)
    phase("pixels")

    if qa:
        graded_now = [r[0] for r in results if r[0] is not None]
        out.qa = record_grades(
            dbs,
            day,
            graded_now,
            thresholds,
            skipped_unchanged=len(images) - len(to_grade),
            publish=False,
        )
        phase("record_qa")
    if thumbnails:
        drawn = [r[1] for r in results if r[1] is not None]
        out.thumbnails = record_thumbnails(dbs, day, drawn, unchanged=unchanged, publish=False)
        phase("record_thumbnails")
    if sources:
        done: list[ExtractedImage] = [r[2] for r in results if r[2] is not None]
        failed = [
            im for im in images if graded(im) == "fail" and (im.path in stale or im.grade != "fail")
        ]
        out.sources = record_extractions(dbs, day, done, failed, extraction)
        out.sources.images = len(images)
        out.sources.unchanged = len(images) - len(done) - len(failed)
        out.sources.seconds = out.cpu.consumers_s[2] if out.cpu else 0.0
        phase("record_sources")
    summary = publishing.publish_ready(
        dbs.engine("data_registry"), [(im.path, day) for im in needed]
    )
    if out.qa is not None:
        out.qa.published, out.qa.left_in_staging = summary.published, summary.left_in_staging
    phase("publish")
    return out
