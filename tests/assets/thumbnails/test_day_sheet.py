"""The day's contact sheet: tile labels, worst-first order, grades from the products database."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from PIL import Image as PILImage

from assets.catalogue.ingest import ingest_day
from assets.qa.grading import grade_day
from assets.qa.statistics import QAThresholds
from assets.thumbnails.day import (
    day_sheet,
    preview_dir,
    thumbnails_day,
    tile_label,
    worst_first,
)
from resources.database import Databases
from resources.fits_service import FitsMetadataService
from resources.repositories.products import ImageQADetail, qa_details_of_day
from resources.settings import thumbnail_dir
from tests.fixtures_pipeline import SAMPLE_START, Expected, write_samples

DAY = SAMPLE_START


def _detail(path: str, grade: str | None, minute: int, *, current: bool = True) -> ImageQADetail:
    return ImageQADetail(
        image_id=minute,
        path=path,
        date_obs=dt.datetime(2025, 10, 1, 2, minute, tzinfo=dt.UTC),
        dec_deg=16.3,
        hdu_index=0,
        has_beam=True,
        grade=grade,
        qa_current=current and grade is not None,
        reasons=[] if grade in (None, "good") else [f"{grade} reason"],
        rms_jy=1e-3,
        peak_jy=1.0,
        dynamic_range=1000.0,
        thumb_path=None,
    )


def test_tile_label_keeps_time_and_dec_strip() -> None:
    assert tile_label("/in/2025-10-01T02:00:00_dec+16.3.fits", DAY) == "02:00:00 dec+16.3"
    assert tile_label("/in/2025-10-01T02:00:00_dec-05.0.fits.fz", DAY) == "02:00:00 dec-05.0"
    # another day's name, or a name without the pattern, is kept (only the suffix goes)
    assert (
        tile_label("/in/2025-10-02T02:00:00_dec+16.3.fits", DAY) == "2025-10-02T02:00:00 dec+16.3"
    )
    assert tile_label("/in/field A.fits.gz", DAY) == "field A"


def test_worst_first_orders_fail_warn_ungraded_good_then_time() -> None:
    details = [
        _detail("good-early", "good", 0),
        _detail("warn", "warn", 5),
        _detail("stale-fail", "fail", 6, current=False),  # graded on older content
        _detail("fail-late", "fail", 30),
        _detail("ungraded", None, 1),
        _detail("fail-early", "fail", 10),
    ]
    assert [d.path for d in worst_first(details)] == [
        "fail-early", "fail-late", "warn", "ungraded", "stale-fail", "good-early"
    ]  # fmt: skip


@pytest.fixture
def expected(data_dir: Path, dbs: Databases, tmp_path: Path) -> Expected:
    exp = Expected(write_samples(data_dir / "incoming", days=1, per_day=4))
    service = FitsMetadataService(cache_path=tmp_path / "cache.sqlite3", max_workers=1)
    ingest_day(dbs, service, DAY, run_id="sheet")
    return exp


def test_sheet_before_qa_is_plain_and_after_qa_worst_first(
    dbs: Databases, expected: Expected
) -> None:
    thumbnails_day(dbs, DAY, size=48, sample_size=0)
    plain = day_sheet(dbs, DAY, name="thumbnails-sheet")
    assert plain.tiles == len(expected.catalogued(DAY)) and plain.graded_tiles == 0
    assert plain.path == preview_dir() / DAY.isoformat() / "thumbnails-sheet.png"
    assert plain.path.read_bytes() == plain.png
    assert thumbnail_dir() not in plain.path.parents  # one PNG per image there, nothing else

    grade_day(dbs, DAY, QAThresholds())
    graded = day_sheet(dbs, DAY, name="qa-sheet")
    assert graded.graded_tiles == graded.tiles
    with dbs.connect("products") as conn:
        order = [d.grade for d in worst_first(qa_details_of_day(conn, DAY))]
    assert order[0] == "warn" and order[-1] == "good"  # the NaN-beam image comes first
    preview = PILImage.open(io.BytesIO(graded.preview))
    full = PILImage.open(io.BytesIO(graded.png))
    assert preview.mode == "P" and preview.size[0] < full.size[0]
    assert len(graded.preview) < len(graded.png)


def test_sheet_renders_tiles_when_thumbnails_are_not_there_yet(
    dbs: Databases, expected: Expected
) -> None:
    """QA may run before (or alongside) the thumbnails: its sheet renders what it needs."""
    grade_day(dbs, DAY, QAThresholds())
    sheet = day_sheet(dbs, DAY, name="qa-sheet", size=48)
    assert sheet.tiles == len(expected.catalogued(DAY)) and sheet.missing == []
    assert not list(thumbnail_dir().rglob("*.png"))  # nothing written for the thumbnails asset
