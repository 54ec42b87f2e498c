"""The summary `contimg demo` ends with: QA grades per day, then the files that could not be
catalogued (with those that failed before a date could be read), within 100 columns."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from pipeline_defs.cli.demo import SUMMARY_WIDTH, _summary
from resources.database import Databases
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import qa_details_of_day

DAYS = [dt.date(2025, 10, 4), dt.date(2025, 10, 5)]
LONG = "the header says NAXIS2 = 512 but the data unit ends after 100 rows; " * 4

FAILED = [
    # path, obs_date, error class, message (as the scan and the ingest asset record them)
    ("/in/junk.bin.fits", None, "NotFITSError", "/in/junk.bin.fits: no SIMPLE card. Check it."),
    ("/in/nodate.fits", None, "MissingObservationDateError", "/in/nodate.fits: no DATE-OBS."),
    ("/in/2025-10-05/cut.fits", DAYS[1], "TruncatedFITSError", f"/in/2025-10-05/cut.fits: {LONG}"),
    ("/in/2025-10-09/other.fits", dt.date(2025, 10, 9), "BadHeaderError", "another day"),
]


@pytest.fixture
def dbs(env) -> Databases:  # type: ignore[no-untyped-def]
    engines, _ = env
    eng = engines["ingest"]
    ingest_queue.register_files(
        eng, [ingest_queue.FileRecord(p, 1, i, day) for i, (p, day, _, _) in enumerate(FAILED)]
    )
    for path, _, error_class, message in FAILED:
        ingest_queue.transition(eng, path, "pending", "in_progress")
        ingest_queue.mark_failed(eng, path, error_class, message)
    return Databases.from_env()


def test_two_tables_grades_then_uncatalogued_files(
    dbs: Databases, capsys: pytest.CaptureFixture[str]
) -> None:
    _summary(dbs, DAYS)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= SUMMARY_WIDTH for line in lines), max(lines, key=len)

    start = lines.index("QA grades of the catalogued images")
    assert lines[start + 1].split() == ["day", "images", "good", "warn", "fail"]
    with dbs.connect("products") as conn:
        for offset, day in enumerate(DAYS, start=2):
            grades = [r.grade for r in qa_details_of_day(conn, day)]
            expected = [str(len(grades)), *(str(grades.count(g)) for g in ("good", "warn", "fail"))]
            # only QA grades on the day's row: the failed files are not a column here
            assert lines[start + offset].split() == [day.isoformat(), *expected]
    assert sum(int(lines[start + k].split()[4]) for k in (2, 3)) > 0  # fail grades are counted

    start = lines.index("files that could not be catalogued: 3")
    header, *rows = lines[start + 1 : start + 5]
    assert header.split() == ["file", "day", "error", "message"]
    cells = {re.split(r"\s{2,}", row)[0]: re.split(r"\s{2,}", row) for row in rows}
    assert cells["junk.bin.fits"] == [
        "junk.bin.fits",
        "no date",
        "NotFITSError",
        "no SIMPLE card. Check it.",
    ]
    assert cells["nodate.fits"][1:] == ["no date", "MissingObservationDateError", "no DATE-OBS."]
    assert cells["cut.fits"][1:3] == ["2025-10-05", "TruncatedFITSError"]
    assert cells["cut.fits"][3].endswith("…") and cells["cut.fits"][3].startswith("the header")
    assert "other.fits" not in out  # a day the demo did not run
    for path, *_ in FAILED[:3]:
        assert out.count(path.rsplit("/", 1)[1]) == 1 and path not in out  # the name, once
    assert "`contimg queue --failed`" in out


def test_no_failed_files(env, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _summary(Databases.from_env(), DAYS)
    out = capsys.readouterr().out
    assert "files that could not be catalogued: 0" in out and "error" not in out


def test_sources_summary_without_candidates(env, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """A catalogue without sources (or without variables) says so in one line, no table."""
    from pipeline_defs.cli.demo import DEMO_MIN_ETA, _sources_summary
    from resources.repositories.products import SourceFilter, list_sources

    dbs = Databases.from_env()
    with dbs.connect("products") as conn:
        every, _ = list_sources(conn, SourceFilter(limit=None))
        candidates, _ = list_sources(conn, SourceFilter(min_eta=DEMO_MIN_ETA, limit=None))
    assert not candidates  # the catalogue fixture has no variable sources
    _sources_summary(dbs)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"sources       {len(every)} from ")
    assert lines[2].startswith("no variable candidates (`contimg sources list --min-eta")
    assert len(lines) == 3 and "sources show" not in lines[2]
