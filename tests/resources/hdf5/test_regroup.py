"""Re-grouping replaces a day's groups exactly: late files, changed tolerances, midnight.

After any sequence of registrations and re-runs, the stored ids of a day are the groups that
clustering every file ever registered gives (`group_files` over all of them), never those plus
leftovers of an earlier grouping; the row counts do not grow. SQLite always, PostgreSQL when
reachable (required under CONTIMG_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from resources.hdf5 import synthetic
from resources.hdf5.grouping import FileRef, group_files
from resources.hdf5.registration import register_paths
from resources.models._common import as_utc
from resources.models.hdf5 import Hdf5File, parse_hdf5_name
from resources.repositories import hdf5
from tests.resources.hdf5.files import Observation
from tests.resources.repositories.catalogue_data import backend_engine

MIDNIGHT = dt.datetime(2025, 10, 6, tzinfo=dt.UTC)
DAY = MIDNIGHT.date() - dt.timedelta(days=1)
NEXT_DAY = MIDNIGHT.date()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Engine]:
    yield from backend_engine(request, data_dir, "hdf5")


def _insert(engine: Engine, stamps: Sequence[dt.datetime], subbands: Sequence[int]) -> None:
    rows = []
    for stamp, subband in zip(stamps, subbands, strict=True):
        name = parse_hdf5_name(f"{stamp:%Y-%m-%dT%H:%M:%S}_sb{subband:02d}.hdf5")
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


def _expected(engine: Engine, tolerance_s: float = 60.0) -> dict[dt.date, dict[str, list[str]]]:
    """Per day, group id -> sorted paths, from clustering every stored file at once."""
    with engine.connect() as conn:
        table = Hdf5File.__table__
        refs = [
            FileRef(r.path, as_utc(r.timestamp), r.subband)
            for r in conn.execute(select(table.c.path, table.c.timestamp, table.c.subband))
        ]
    by_day: dict[dt.date, dict[str, list[str]]] = {}
    for group in group_files(refs, tolerance_s):
        by_day.setdefault(group.start.date(), {})[group.group_id] = sorted(group.paths)
    return by_day


def _stored(engine: Engine, day: dt.date) -> dict[str, list[str]]:
    return {g.group_id: sorted(g.paths) for g in hdf5.day_groups(engine, day)}


def test_a_late_file_before_midnight_leaves_no_phantom_group(engine: Engine) -> None:
    """23:59:50, 00:00:30, 00:00:45 are one group; a late 23:59:20 file starts the group
    earlier, so the two files after midnight (70 s and 85 s after it) open one of the next
    day. Regrouping the late file's day must move them, and say that the next day changed."""
    first = [MIDNIGHT + dt.timedelta(seconds=s) for s in (-10, 30, 45)]
    _insert(engine, first, [0, 1, 2])
    assert hdf5.regroup_days(engine, [DAY, NEXT_DAY]) == {
        DAY: hdf5.day_groups(engine, DAY),
        NEXT_DAY: [],
    }
    assert list(_stored(engine, DAY)) == ["2025-10-05T23:59:50"]

    _insert(engine, [MIDNIGHT - dt.timedelta(seconds=40)], [3])
    result = hdf5.regroup_day(engine, DAY)
    assert [g.group_id for g in result.groups] == ["2025-10-05T23:59:20"]
    assert result.touched_days == frozenset({NEXT_DAY})
    assert _stored(engine, DAY) == _expected(engine)[DAY]  # no 23:59:50 leftover
    assert list(_stored(engine, NEXT_DAY)) == ["2025-10-06T00:00:30"]


def test_a_stale_id_beyond_the_window_is_replaced(engine: Engine) -> None:
    """With 120 s, 23:59:30 .. 00:01:20 were one group; back to 60 s, the 00:01:20 file (beyond
    midnight + 60 s) still holds the old id until the day's regroup reaches it."""
    stamps = [MIDNIGHT + dt.timedelta(seconds=s) for s in (-30, 20, 50, 80)]
    _insert(engine, stamps, [0, 1, 2, 3])
    hdf5.regroup_day(engine, DAY, tolerance_s=120)
    assert [len(v) for v in _stored(engine, DAY).values()] == [4]
    hdf5.regroup_day(engine, DAY)
    pair = ["/raw/2025-10-05T23:59:30_sb00.hdf5", "/raw/2025-10-06T00:00:20_sb01.hdf5"]
    assert _stored(engine, DAY) == _expected(engine)[DAY] == {"2025-10-05T23:59:30": pair}


@pytest.mark.parametrize("seed", range(6))
def test_any_order_of_arrivals_and_reruns_gives_the_global_grouping(
    engine: Engine, seed: int
) -> None:
    """Files around two midnights arrive in random batches, each followed by a regroup of its
    days (as a registration does), with re-runs at other tolerances in between; at the end a
    default regroup of the days of the last batch leaves every day exactly as clustering all
    files at once would, and re-running it writes nothing more."""
    rng = random.Random(seed)
    base = [MIDNIGHT + dt.timedelta(days=d, seconds=s) for d in (0, 1) for s in range(-400, 400)]
    stamps = sorted(set(rng.sample(base, 120)))
    subbands = [rng.randrange(16) for _ in stamps]
    order = list(range(len(stamps)))
    rng.shuffle(order)
    days = {s.date() for s in stamps}
    for start in range(0, len(order), 20):
        batch = order[start : start + 20]
        _insert(engine, [stamps[i] for i in batch], [subbands[i] for i in batch])
        touched = {stamps[i].date() for i in batch}
        hdf5.regroup_days(engine, touched, tolerance_s=rng.choice([30.0, 60.0, 90.0]))
    hdf5.regroup_days(engine, sorted(days))
    expected = _expected(engine)
    for day in sorted(days | set(expected)):
        assert _stored(engine, day) == expected.get(day, {}), day
    assert all(not hdf5.regroup_day(engine, day).touched_days for day in days)
    assert hdf5.counts(engine) == {"hdf5_files": len(stamps), "hdf5_failures": 0}
    grouped = sum(len(p) for day in expected for p in _stored(engine, day).values())
    assert grouped == len(stamps)  # every file in exactly one group


def test_registration_regroups_the_next_day_a_late_file_changed(
    engine: Engine, observation: Observation, tmp_path: Path
) -> None:
    """Real files: the late one is dated the day before, yet the next day's groups change, so
    the registration's report names both days (the sensor asks for a run of each)."""
    paths = [
        observation(MIDNIGHT + dt.timedelta(seconds=s), subbands=[sb], max_jitter_s=0)[0]
        for s, sb in ((-10, 0), (30, 1), (45, 2))
    ]
    assert sorted(register_paths(engine, paths, workers=1).groups) == [DAY, NEXT_DAY]
    late = observation(MIDNIGHT - dt.timedelta(seconds=40), subbands=[3], max_jitter_s=0)
    report = register_paths(engine, late, workers=1)
    assert sorted(report.groups) == [DAY, NEXT_DAY]
    assert [g.group_id for g in report.groups[NEXT_DAY]] == ["2025-10-06T00:00:30"]
    assert list(_stored(engine, DAY)) == ["2025-10-05T23:59:20"]

    # a corrupted file leaves its group; the others stay; the counts do not grow on a re-run
    synthetic.corrupt_file(paths[1])
    report = register_paths(engine, [*paths, *late], workers=1)
    assert [f.path for f in report.failures] == [str(paths[1])]
    assert hdf5.counts(engine) == {"hdf5_files": 3, "hdf5_failures": 1}
    assert _stored(engine, NEXT_DAY) == {"2025-10-06T00:00:45": [str(paths[2])]}
    register_paths(engine, [*paths, *late], workers=1, recheck=True)
    assert hdf5.counts(engine) == {"hdf5_files": 3, "hdf5_failures": 1}
    assert [f.path for f in hdf5.day_failures(engine, NEXT_DAY)] == [str(paths[1])]
