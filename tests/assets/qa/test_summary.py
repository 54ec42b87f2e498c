"""The day's QA verdicts and per-image table rows (assets/qa/summary.py), on plain rows."""

from __future__ import annotations

import dataclasses
import datetime as dt

from assets.qa.summary import REASONS_CHARS, day_checks, qa_table_rows
from resources.repositories.products import ImageQADetail

BASE = ImageQADetail(
    image_id=1,
    path="/in/2025-10-01T02:00:00_dec+16.3.fits",
    date_obs=dt.datetime(2025, 10, 1, 2, tzinfo=dt.UTC),
    dec_deg=16.3,
    hdu_index=0,
    has_beam=True,
    grade="good",
    qa_current=True,
    reasons=[],
    rms_jy=0.0012345,
    peak_jy=1.23456,
    dynamic_range=1000.0,
    thumb_path=None,
)


def _with(**changes: object) -> ImageQADetail:
    return dataclasses.replace(BASE, **changes)


def test_day_checks_of_a_day() -> None:
    details = [
        BASE,
        _with(path="/in/b.fits", grade="fail", reasons=["dynamic range 8 < 10"]),
        _with(path="/in/c.fits", grade=None, qa_current=False),
        _with(path="/in/d.fits", has_beam=False, grade="warn", reasons=["beam missing (x)"]),
    ]
    checks = day_checks(details, limit=0.2)
    assert checks.grades == {"good": 1, "warn": 1, "fail": 1}
    assert checks.fail_fraction == 0.25
    fail_share = checks.by_name["fail_share_below_limit"]
    assert not fail_share.passed and fail_share.metadata["failed"] == 1
    assert "1 of 4 images failed QA (25.0%); limit 20.0%" == fail_share.description
    coverage = checks.by_name["every_image_has_qa"]
    assert not coverage.passed and coverage.metadata["examples"] == ["c.fits"]
    beam = checks.by_name["beam_present_on_all_images"]
    assert not beam.passed and beam.metadata["examples"] == ["d.fits"]
    assert all(v.passed for v in day_checks([BASE], limit=0.0).by_name.values())
    assert day_checks([], limit=0.0).fail_fraction == 0.0


def test_qa_table_rows_are_short() -> None:
    long = [f"reason number {i} with words" for i in range(20)]
    rows = qa_table_rows([_with(grade="warn", reasons=long), _with(grade="fail", qa_current=False)])
    assert rows[0]["image"] == "2025-10-01T02:00:00_dec+16.3.fits"
    assert rows[0]["rms_mjy"] == 1.2345 and rows[0]["peak_jy"] == 1.2346
    assert len(rows[0]["reasons"]) == REASONS_CHARS and rows[0]["reasons"].endswith("…")
    assert rows[1]["grade"] == "ungraded" and rows[1]["reasons"] == ""
