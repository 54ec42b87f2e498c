"""`resources.hdf5.scan`: which files a scan sees, the header budget, the day digest, workers."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path

from resources.hdf5 import scan
from resources.hdf5.grouping import FileRef, group_files
from tests.resources.hdf5.files import START, Observation


def test_find_files_recurses_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / ".staging").mkdir()
    for path in (
        tmp_path / "a" / "deep" / "2025-10-05T12:00:09_sb01.hdf5",
        tmp_path / "2025-10-05T12:00:00_sb00.hdf5",
        tmp_path / ".staging" / "2025-10-05T12:00:00_sb02.hdf5",
        tmp_path / "notes.txt",
    ):
        path.write_bytes(b"x")
    found, missing = scan.find_files([tmp_path, tmp_path / "absent"])
    assert [p.name for p in found] == [
        "2025-10-05T12:00:00_sb00.hdf5",
        "2025-10-05T12:00:09_sb01.hdf5",
    ]
    assert missing == [tmp_path / "absent"]


def test_scan_with_a_budget_and_a_name_filter(
    observation: Observation, tmp_path: Path, data_dir: Path
) -> None:
    from tests.resources.repositories.catalogue_data import migrated

    engine = migrated("hdf5", f"sqlite:///{data_dir / 'hdf5.sqlite3'}")
    observation(START)
    observation(START + dt.timedelta(days=1), subbands=[0])
    raw = [tmp_path / "raw"]
    first = scan.scan_directories(engine, raw, max_header_reads=5, names_starting=["2025-10-05"])
    assert (first.found, first.deferred, first.report.result.inserted) == (16, 11, 5)
    assert first.days == [START.date()]
    rest = scan.scan_directories(engine, raw)
    assert (rest.found, rest.deferred, rest.report.result.inserted) == (17, 0, 12)
    assert rest.report.skipped_unchanged == 5
    assert "17 files under 1 directory, 12 new, 0 changed, 5 unchanged" in rest.summary()
    engine.dispose()


def test_day_digest_changes_with_the_files_only() -> None:
    refs = [FileRef(f"/d/{sb}.hdf5", START + dt.timedelta(seconds=sb), sb) for sb in range(3)]
    groups = group_files(refs)
    assert scan.day_digest(groups, []) == scan.day_digest(group_files(reversed(refs)), [])
    assert scan.day_digest(groups, []) != scan.day_digest(group_files(refs[:2]), [])


def _workers_in_child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(scan.safe_workers())


def test_a_daemonic_process_reads_headers_itself() -> None:
    assert scan.safe_workers() is None
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_workers_in_child, args=(queue,), daemon=True)
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == 1
