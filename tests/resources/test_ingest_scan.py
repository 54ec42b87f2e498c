"""scan_incoming against a real migrated ingest database and real sample FITS files."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from resources.database import Databases
from resources.fits.parser import read_obs_time
from resources.fits.synthetic import BROKEN_KINDS, ImageSpec, write_image
from resources.ingest_scan import scan_incoming
from resources.repositories import ingest as ingest_queue
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    queue_rows,
    write_samples,
)

# Files whose header cannot give a partition: the scan itself records them failed.
SCAN_FAILURES = {
    "bad_header_bytes": "BadHeaderError",
    "not_fits": "NotFITSError",
    "missing_date_obs": "MissingObservationDateError",
}


@pytest.fixture
def engine(dbs: Databases) -> Engine:
    return dbs.engine("ingest")


class CountingReader:
    """read_time that counts header reads (the real reader underneath)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, path: str) -> dt.datetime | None:
        self.paths.append(path)
        return read_obs_time(path)


def test_new_files_registered_with_dates_then_not_read_again(
    engine: Engine, data_dir: Path
) -> None:
    incoming = data_dir / "incoming"
    expected = Expected(write_samples(incoming))
    reader = CountingReader()
    first = scan_incoming(engine, [incoming], read_time=reader)
    assert first.files_seen == len(expected.files)
    assert first.registered_new == len(expected.files)
    assert first.header_reads == len(expected.files) == len(reader.paths)
    rows = queue_rows(engine)
    for sample in expected.files:
        row = rows[str(sample.path)]
        if sample.kind in SCAN_FAILURES:
            assert row.state == "failed"
            assert row.error_class == SCAN_FAILURES[sample.kind]
            assert str(sample.path) in (row.last_error or "")
            assert row.obs_date is None
        else:
            assert row.state == "pending", sample.kind
            assert row.obs_date == sample.obs_date, sample.kind
    good_per_day = {d: len(expected.catalogued(d)) for d in expected.days()}
    # every file whose header gives a date is counted on its date (the header-fine broken
    # files too: they fail later, in fits_metadata)
    dated = [f for f in expected.files if f.kind not in SCAN_FAILURES]
    assert sum(first.dates.values()) == len(dated)
    assert first.dates[SAMPLE_START] > good_per_day[SAMPLE_START]
    assert {f.error_class for f in first.failures} == set(SCAN_FAILURES.values())

    reader.paths.clear()
    second = scan_incoming(engine, [incoming], read_time=reader)
    assert reader.paths == []
    assert second.header_reads == 0
    assert second.unchanged == len(expected.files)
    assert second.registered_new == second.registered_changed == 0
    assert second.failures == [] and second.dates == {}
    assert queue_rows(engine) == rows  # nothing touched, not even timestamps


def test_modified_file_requeued(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    files = write_samples(incoming, days=1, per_day=3, broken=False)
    scan_incoming(engine, [incoming])
    target = str(files[1].path)
    ingest_queue.claim(engine, limit=10, worker="test")
    for f in files:
        ingest_queue.mark_completed(engine, str(f.path))
    # same bytes, new mtime: the queue cannot know the content is the same -> pending again
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    reader = CountingReader()
    result = scan_incoming(engine, [incoming], read_time=reader)
    assert reader.paths == [target]
    assert result.registered_changed == 1 and result.registered_new == 0
    rows = queue_rows(engine)
    assert rows[target].state == "pending"
    assert rows[target].attempts == 0
    assert rows[target].mtime_ns == st.st_mtime_ns + 1_000_000_000
    assert {p: r.state for p, r in rows.items() if p != target} == {
        str(f.path): "completed" for f in files if str(f.path) != target
    }
    # rewritten with a different size (another image of the same day) -> pending again
    ingest_queue.claim(engine, limit=10, worker="test")
    ingest_queue.mark_completed(engine, target)
    spec = ImageSpec(
        date_obs=dt.datetime(2025, 10, 1, 9, 0, tzinfo=dt.UTC), dec_deg=16.3, size=48, seed=5
    )
    write_image(Path(target), spec)
    assert os.stat(target).st_size != st.st_size
    result = scan_incoming(engine, [incoming])
    assert result.registered_changed == 1
    assert queue_rows(engine)[target].state == "pending"
    assert queue_rows(engine)[target].size_bytes == os.stat(target).st_size


def test_file_younger_than_min_age_left_for_next_scan(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    path = write_image(
        incoming / "fresh.fits",
        ImageSpec(date_obs=dt.datetime(2025, 10, 2, 3, tzinfo=dt.UTC), dec_deg=54.6, size=32),
    )
    mtime = path.stat().st_mtime_ns / 1e9
    reader = CountingReader()
    young = scan_incoming(engine, [incoming], min_age_s=10, now=lambda: mtime + 5, read_time=reader)
    assert young.too_young == 1 and young.header_reads == 0 and reader.paths == []
    assert "still being written" in young.summary()
    assert queue_rows(engine) == {}
    old = scan_incoming(engine, [incoming], min_age_s=10, now=lambda: mtime + 11)
    assert old.too_young == 0 and old.registered_new == 1
    assert queue_rows(engine)[str(path)].obs_date == dt.date(2025, 10, 2)


def test_file_with_future_mtime_is_not_skipped_forever(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    path = write_image(
        incoming / "skewed.fits",
        ImageSpec(date_obs=dt.datetime(2025, 10, 2, 3, tzinfo=dt.UTC), dec_deg=54.6, size=32),
    )
    now = path.stat().st_mtime_ns / 1e9 - 3600.0  # the writer's clock is an hour ahead
    result = scan_incoming(engine, [incoming], min_age_s=10, now=lambda: now)
    assert result.too_young == 0 and result.registered_new == 1
    # just ahead of now (within min_age): could be a file being written on a skewed server
    write_image(
        incoming / "writing.fits",
        ImageSpec(date_obs=dt.datetime(2025, 10, 2, 4, tzinfo=dt.UTC), dec_deg=54.6, size=32),
    )
    ahead = (incoming / "writing.fits").stat().st_mtime_ns / 1e9 - 5.0
    result = scan_incoming(engine, [incoming], min_age_s=10, now=lambda: ahead)
    assert result.too_young == 1 and result.registered_new == 0


def test_header_budget_respected_and_rest_found_next_call(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    files = write_samples(incoming, days=2, per_day=4, broken=False)
    reader = CountingReader()
    first = scan_incoming(engine, [incoming], max_header_reads=3, read_time=reader)
    assert first.header_reads == 3 == len(reader.paths)
    assert first.budget_exhausted and "budget reached" in first.summary()
    assert len(queue_rows(engine)) == 3
    second = scan_incoming(engine, [incoming], max_header_reads=3, read_time=reader)
    assert second.header_reads == 3 and second.unchanged == 3
    third = scan_incoming(engine, [incoming], max_header_reads=3, read_time=reader)
    assert third.header_reads == 2 and not third.budget_exhausted
    assert len(reader.paths) == len(set(reader.paths)) == len(files)  # each header read once
    assert set(queue_rows(engine)) == {str(f.path) for f in files}


def test_time_budget_stops_header_reads(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    files = write_samples(incoming, days=1, per_day=4, broken=False)
    result = scan_incoming(engine, [incoming], time_budget_s=-1.0)
    assert result.budget_exhausted and result.header_reads == 0
    assert result.files_seen == len(files) and queue_rows(engine) == {}


def test_broken_files_recorded_with_their_error(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    expected = Expected(write_samples(incoming, days=1, per_day=1))
    scan_incoming(engine, [incoming])
    rows = queue_rows(engine)
    for kind in BROKEN_KINDS:
        sample = expected.by_kind(kind.name)
        row = rows[str(sample.path)]
        if kind.name in SCAN_FAILURES:
            assert (row.state, row.error_class) == ("failed", kind.ingest_error), kind.name
        else:
            # the header is fine: queued on its date, for fits_metadata to fail (or ingest)
            assert (row.state, row.obs_date) == ("pending", SAMPLE_START), kind.name


def test_date_before_partitions_start_recorded_failed(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    early = write_image(
        incoming / "sub" / "early.fits",
        ImageSpec(date_obs=dt.datetime(2024, 12, 31, 23, 59, tzinfo=dt.UTC), dec_deg=65.7, size=32),
    )
    on_time = write_image(
        incoming / "on_time.fits",
        ImageSpec(date_obs=dt.datetime(2025, 1, 1, 0, 1, tzinfo=dt.UTC), dec_deg=65.7, size=32),
    )
    result = scan_incoming(engine, [incoming], partitions_start=dt.date(2025, 1, 1))
    rows = queue_rows(engine)
    assert rows[str(early)].state == "failed"
    assert rows[str(early)].error_class == "ObservationDateOutOfRangeError"
    assert "2024-12-31" in (rows[str(early)].last_error or "")
    assert "2025-01-01" in (rows[str(early)].last_error or "")
    assert rows[str(on_time)].state == "pending"
    assert result.dates == {dt.date(2025, 1, 1): 1}
    assert [f.error_class for f in result.failures] == ["ObservationDateOutOfRangeError"]


def test_mtime_fallback_dates_undated_file(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    expected = Expected(write_samples(incoming, days=1, per_day=1))
    undated = expected.by_kind("missing_date_obs")
    scan_incoming(engine, [incoming], mtime_fallback=True)
    row = queue_rows(engine)[str(undated.path)]
    mtime_day = dt.datetime.fromtimestamp(undated.path.stat().st_mtime, tz=dt.UTC).date()
    assert (row.state, row.obs_date) == ("pending", mtime_day)


def test_patterns_and_missing_directory(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    write_samples(incoming, days=1, per_day=2, broken=False)
    (incoming / "notes.txt").write_text("not matched")
    result = scan_incoming(engine, [incoming, data_dir / "does-not-exist"], patterns=("*.fits",))
    assert result.files_seen == 2 and result.registered_new == 2


def test_failed_file_fixed_is_requeued(engine: Engine, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    expected = Expected(write_samples(incoming, days=1, per_day=1))
    broken = expected.by_kind("not_fits")
    scan_incoming(engine, [incoming])
    assert queue_rows(engine)[str(broken.path)].state == "failed"
    write_image(
        broken.path,
        ImageSpec(date_obs=dt.datetime(2025, 10, 1, 13, tzinfo=dt.UTC), dec_deg=16.3, size=32),
    )
    os.utime(broken.path, ns=(0, broken.path.stat().st_mtime_ns + 10**9))
    result = scan_incoming(engine, [incoming])
    assert result.registered_changed == 1 and result.failures == []
    row = queue_rows(engine)[str(broken.path)]
    assert (row.state, row.obs_date, row.error_class) == ("pending", SAMPLE_START, None)


def test_concurrent_discoverers_of_a_broken_file(engine: Engine, data_dir: Path) -> None:
    """The sensor and a run's index refresh may both find the same new broken file: whichever
    records the failure second must not crash (a crashed refresh fails the partition)."""
    incoming = data_dir / "incoming"
    expected = Expected(write_samples(incoming, days=1, per_day=1))
    broken = str(expected.by_kind("not_fits").path)
    nested: list[int] = []

    def racing_reader(path: str) -> dt.datetime | None:
        if path == broken and not nested:
            nested.append(1)  # the other discoverer gets there first, completely
            scan_incoming(engine, [incoming])
        return read_obs_time(path)

    result = scan_incoming(engine, [incoming], read_time=racing_reader)
    assert nested
    assert {f.error_class for f in result.failures} == set(SCAN_FAILURES.values())
    rows = queue_rows(engine)
    for kind, error_class in SCAN_FAILURES.items():
        row = rows[str(expected.by_kind(kind).path)]
        assert (row.state, row.error_class, row.attempts) == ("failed", error_class, 1)
