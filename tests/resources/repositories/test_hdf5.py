"""The hdf5 repository on real databases (SQLite always, PostgreSQL when available) with real
UVH5 files: registration (idempotent, batched, failures with their typed error), groups of a
day, and the files of one group."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from migrations import runner
from resources.hdf5 import synthetic
from resources.hdf5.headers import read_headers
from resources.hdf5.registration import register_paths
from resources.models.hdf5 import Hdf5File, parse_hdf5_name
from resources.repositories import hdf5
from tests.resources.hdf5.files import START, Observation, observation_maker
from tests.resources.repositories.catalogue_data import backend_engine, migrated

DAY = START.date()


@pytest.fixture
def observation(templates: dict[int, Path], tmp_path: Path) -> Observation:
    return observation_maker(templates, tmp_path / "raw")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Engine]:
    yield from backend_engine(request, data_dir, "hdf5")


def _night(observation: Observation, tmp_path: Path) -> dict[str, Path]:
    """12:00 complete; 12:05 without sb07, sb03 twice, sb11 truncated; a misnamed stray."""
    complete = observation(START, seed=1)
    later = START + dt.timedelta(minutes=5)
    partial = observation(later, subbands=[sb for sb in range(16) if sb != 7], seed=2)
    by_sb = {parse_hdf5_name(p).subband: p for p in partial}
    # a re-write of sb03 55 s after the observation start: still within the 60 s tolerance
    offset = (parse_hdf5_name(by_sb[3]).timestamp - later).total_seconds()
    duplicate = synthetic.duplicate_subband(by_sb[3], delay_s=int(55 - offset))
    corrupt = synthetic.corrupt_file(by_sb[11])
    stray = synthetic.write_not_hdf5(tmp_path / "raw" / "capture.log.hdf5")
    return {
        "complete": complete[0].parent,
        "duplicate": duplicate,
        "corrupt": corrupt,
        "stray": stray,
    }


def _all(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "raw").glob("*.hdf5"))


def test_a_night_registered_grouped_and_failures_listed(
    engine: Engine, observation: Observation, tmp_path: Path
) -> None:
    cases = _night(observation, tmp_path)
    paths = _all(tmp_path)
    assert len(paths) == 16 + 15 + 1 + 1
    report = register_paths(engine, paths)
    assert report.result.inserted == 31 and report.result.failed_inserted == 2
    assert hdf5.counts(engine) == {"hdf5_files": 31, "hdf5_failures": 2}

    groups = hdf5.day_groups(engine, DAY)
    assert [g.to_dict()["group_id"] for g in groups] == [
        "2025-10-05T12:00:00",
        "2025-10-05T12:05:00",
    ]
    full, partial = groups
    assert full.complete and full.missing == [] and full.duplicates == [] and full.n_files == 16
    assert partial.missing == [7, 11] and partial.duplicates == [3] and not partial.complete
    assert str(cases["corrupt"]) not in partial.paths  # an unreadable file joins no group
    assert str(cases["duplicate"]) in partial.paths
    assert [g.group_id for g in report.groups[DAY]] == [g.group_id for g in groups]

    landed = dt.datetime.now(dt.UTC).date()  # the stray's name has no date: its mtime's
    failed = hdf5.day_failures(engine, DAY) + hdf5.day_failures(engine, landed)
    by_path = {f.path: f for f in failed}
    assert set(by_path) == {str(cases["corrupt"]), str(cases["stray"])}
    assert [f.path for f in hdf5.day_failures(engine, DAY)] == [str(cases["corrupt"])]
    corrupt = by_path[str(cases["corrupt"])]
    assert corrupt.error_class == "CorruptHDF5Error" and "truncated" in corrupt.error
    stray = by_path[str(cases["stray"])]
    assert stray.error_class == "FileNameError" and stray.obs_date == landed
    assert all("\n" not in f.error and f.error.startswith(f.path) for f in failed)
    assert set(corrupt.to_dict()) >= {"path", "error"}

    with engine.connect() as conn:
        members = hdf5.files_of_group(conn, "2025-10-05T12:05:00")
    assert [parse_hdf5_name(p).subband for p in members] == [
        sb for sb in range(16) if sb not in (7, 11)
    ][:3] + [3] + [sb for sb in range(16) if sb not in (7, 11)][3:]


def test_re_registration_is_idempotent(
    engine: Engine, observation: Observation, tmp_path: Path
) -> None:
    _night(observation, tmp_path)
    paths = _all(tmp_path)
    register_paths(engine, paths)
    with engine.connect() as conn:
        before = conn.execute(select(hdf5.HDF5_FILES).order_by(hdf5.HDF5_FILES.c.path)).all()
    again = register_paths(engine, paths)
    assert again.skipped_unchanged == len(paths) and again.headers == []
    assert hdf5.counts(engine) == {"hdf5_files": 31, "hdf5_failures": 2}
    # the headers read again (recheck) still write nothing: same size, mtime and error
    rechecked = register_paths(engine, paths, recheck=True)
    assert rechecked.result.unchanged == 31 and rechecked.result.failed_unchanged == 2
    assert rechecked.result.inserted == rechecked.result.updated == 0
    with engine.connect() as conn:
        after = conn.execute(select(hdf5.HDF5_FILES).order_by(hdf5.HDF5_FILES.c.path)).all()
    assert after == before  # updated_at and group ids untouched
    assert len(hdf5.day_groups(engine, DAY)) == 2


def test_changed_files_move_between_tables(
    engine: Engine, observation: Observation, tmp_path: Path
) -> None:
    cases = _night(observation, tmp_path)
    paths = _all(tmp_path)
    register_paths(engine, paths)
    # the truncated file is copied again in full: it leaves the failures and joins its group
    fixed = cases["corrupt"]
    synthetic.clone_subband(
        min(cases["complete"].glob("2025-10-05T12:00:*_sb11.hdf5")),
        fixed,
        parse_hdf5_name(fixed).timestamp,
    )
    # a good file of the complete observation is cut short: it leaves its group
    broken = min(cases["complete"].glob("2025-10-05T12:00:*_sb04.hdf5"))
    synthetic.corrupt_file(broken)
    # another one is rewritten (new mtime): its row is updated in place
    touched = min(cases["complete"].glob("2025-10-05T12:00:*_sb05.hdf5"))
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    report = register_paths(engine, paths)
    assert (report.result.inserted, report.result.updated) == (1, 1)
    assert (report.result.failed_inserted, report.result.failed_updated) == (1, 0)
    assert report.skipped_unchanged == len(paths) - 3
    assert hdf5.counts(engine) == {"hdf5_files": 31, "hdf5_failures": 2}
    full, partial = hdf5.day_groups(engine, DAY)
    assert full.missing == [4] and partial.missing == [7]
    assert [f.path for f in hdf5.day_failures(engine, DAY)] == [str(broken)]
    with engine.connect() as conn:
        stored = conn.execute(
            select(hdf5.HDF5_FILES.c.mtime_ns).where(hdf5.HDF5_FILES.c.path == str(touched))
        ).scalar_one()
    assert stored == touched.stat().st_mtime_ns


def test_one_transaction_per_batch(
    engine: Engine, observation: Observation, tmp_path: Path
) -> None:
    _night(observation, tmp_path)
    headers, failures = read_headers(_all(tmp_path))
    begins: list[int] = []

    def count(_conn: object) -> None:
        begins.append(1)

    event.listen(engine, "begin", count)
    try:
        result = hdf5.register_files(engine, headers, failures, batch=10)
    finally:
        event.remove(engine, "begin", count)
    assert len(begins) == 4  # 33 files in batches of 10
    assert (result.inserted, result.failed_inserted) == (31, 2)
    single = hdf5.register_files(engine, headers, failures)
    assert single.unchanged == 31 and single.failed_unchanged == 2


def test_jittered_observations_across_midnight(engine: Engine, observation: Observation) -> None:
    """A group belongs to the day of its earliest file, with its files after midnight."""
    late = dt.datetime(2025, 10, 5, 23, 59, 40, tzinfo=dt.UTC)
    paths = observation(late, max_jitter_s=59, seed=11)
    paths += observation(late + dt.timedelta(minutes=5), max_jitter_s=59, seed=12)
    assert any(parse_hdf5_name(p).timestamp.date() == DAY + dt.timedelta(days=1) for p in paths)
    headers, failures = read_headers(paths)
    hdf5.register_files(engine, headers, failures)
    # the next day first: it already writes the ids of the group running into it
    next_day = hdf5.assign_groups_for_day(engine, DAY + dt.timedelta(days=1))
    assert [g.group_id for g in next_day] == ["2025-10-06T00:04:40"]
    first = hdf5.assign_groups_for_day(engine, DAY)
    assert [g.group_id for g in first] == ["2025-10-05T23:59:40"]
    assert first[0].complete and first[0].n_files == 16
    assert [g.group_id for g in hdf5.day_groups(engine, DAY)] == ["2025-10-05T23:59:40"]
    assert hdf5.day_groups(engine, DAY)[0].subbands == list(range(16))
    assert [g.complete for g in hdf5.day_groups(engine, DAY + dt.timedelta(days=1))] == [True]
    # re-assigning changes nothing
    assert hdf5.assign_groups_for_day(engine, DAY) == first


def test_sweep_starts_at_a_certain_group_start(engine: Engine) -> None:
    """Files every 50 s for two hours before midnight: the sweep looks back far enough for the
    anchored rule to give the answer clustering all of history gives."""
    midnight = dt.datetime(2025, 10, 6, tzinfo=dt.UTC)
    stamps = [midnight - dt.timedelta(seconds=50 * k) for k in range(1, 150)]
    stamps += [midnight + dt.timedelta(seconds=10), midnight + dt.timedelta(seconds=45)]
    rows = []
    for i, stamp in enumerate(sorted(stamps)):
        name = parse_hdf5_name(f"{stamp:%Y-%m-%dT%H:%M:%S}_sb{i % 16:02d}.hdf5")
        rows.append(
            {
                "path": f"/raw/{name.filename}",
                "filename": name.filename,
                "subband": name.subband,
                "timestamp_iso": name.timestamp_iso,
                "timestamp": name.timestamp,
                "mjd": name.mjd,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Hdf5File.__table__), rows)
    from resources.hdf5.grouping import FileRef, group_files

    everything = group_files(FileRef(r["path"], r["timestamp"], r["subband"]) for r in rows)
    expected = [g.group_id for g in everything if g.start.date() == midnight.date()]
    got = hdf5.assign_groups_for_day(engine, midnight.date())
    assert [g.group_id for g in got] == expected


def test_files_of_group_in_subband_order(data_dir: Path) -> None:
    engine = migrated("hdf5", f"sqlite:///{data_dir / 'hdf5.sqlite3'}")
    rows = []
    for name, group in (
        ("2025-10-05T12:00:01_sb02.hdf5", "2025-10-05T12:00:00"),
        ("2025-10-05T12:00:00_sb00.hdf5", "2025-10-05T12:00:00"),
        ("2025-10-05T12:05:00_sb00.hdf5", "2025-10-05T12:05:00"),
    ):
        parsed = parse_hdf5_name(name)
        rows.append(
            {
                "path": f"/raw/{name}",
                "filename": name,
                "subband": parsed.subband,
                "timestamp_iso": parsed.timestamp_iso,
                "timestamp": parsed.timestamp,
                "mjd": parsed.mjd,
                "group_id": group,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Hdf5File.__table__), rows)
    with engine.connect() as conn:
        assert hdf5.files_of_group(conn, "2025-10-05T12:00:00") == [
            "/raw/2025-10-05T12:00:00_sb00.hdf5",
            "/raw/2025-10-05T12:00:01_sb02.hdf5",
        ]
        assert hdf5.files_of_group(conn, "nope") == []
    engine.dispose()


def test_hdf5_0002_round_trip_keeps_file_rows(
    engine: Engine, observation: Observation, tmp_path: Path
) -> None:
    """Downgrading hdf5_0002 keeps every hdf5_files row (without the header columns) and drops
    the failures, which the next registration lists again."""
    _night(observation, tmp_path)
    paths = _all(tmp_path)
    register_paths(engine, paths)
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    runner.downgrade("hdf5", url, "hdf5_0001", backup=False)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM hdf5_files").scalar_one() == 31
    runner.upgrade("hdf5", url, backup=False)
    assert runner.check("hdf5", url) == []
    assert hdf5.counts(engine) == {"hdf5_files": 31, "hdf5_failures": 0}
    report = register_paths(engine, paths)
    assert report.result.failed_inserted == 2 and report.skipped_unchanged == 31
    assert len(hdf5.day_groups(engine, DAY)) == 2
