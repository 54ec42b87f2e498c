"""`scan_ms` on real measurement sets and real databases (SQLite and PostgreSQL).

What is indexed equals what casacore reads; an unchanged MS is not opened again, a rewritten one
is; a damaged one is a failure row naming it, never an index row, and the others still land;
images named after an MS are linked to it and make it `imaged`; a re-scan changes no row.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from resources import engines
from resources.database import Databases
from resources.ms import synthetic
from resources.ms.reader import read_ms
from resources.ms.registration import scan_ms
from resources.repositories import products as repo
from tests.fixtures_pipeline import migrated_single_url, migrated_sqlite
from tests.resources.ms.conftest import START, WrittenSets

DAY = START.date()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dbs(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Databases]:
    if request.param == "sqlite":
        yield migrated_sqlite(data_dir)
    else:
        yield migrated_single_url(request.getfixturevalue("pg_url"))
    engines.dispose_all()


@pytest.fixture
def ms_dir(tmp_path: Path, written: WrittenSets) -> Path:
    """A watched directory holding copies of the shared plain and calibrated sets."""
    root = tmp_path / "ms"
    (root / "night").mkdir(parents=True)
    for source in (written.plain, written.calibrated):
        shutil.copytree(source, root / "night" / source.name)
    return root


def add_image(dbs: Databases, path: str, day: dt.date = DAY) -> int:
    when = dt.datetime.combine(day, dt.time(0, 5), dt.UTC)
    row = {
        "path": path, "size_bytes": 10, "mtime_ns": 20, "fingerprint": "f", "hdu_index": 0,
        "naxis": [4, 4], "bitpix": -32, "width": 4, "height": 4, "date_obs": when,
        "obs_date": day, "warnings": [],
    }  # fmt: skip
    with dbs.begin("products") as conn:
        return conn.execute(
            insert(repo.IMAGES).values(row).returning(repo.IMAGES.c.id)
        ).scalar_one()


def counts(dbs: Databases) -> tuple[int, int]:
    with dbs.connect("products") as conn:
        n_ms = conn.execute(select(func.count()).select_from(repo.MS_INDEX)).scalar_one()
        n_failed = conn.execute(select(func.count()).select_from(repo.MS_FAILURES)).scalar_one()
    return n_ms, n_failed


def test_scan_indexes_what_casacore_reads_and_skips_unchanged(dbs: Databases, ms_dir: Path) -> None:
    engine = dbs.engine("products")
    first = scan_ms(engine, [ms_dir])
    assert (first.found, len(first.read), len(first.failures)) == (2, 2, 0)
    with dbs.connect("products") as conn:
        rows = {Path(r.path).name: r for r in repo.list_ms(conn, obs_date=DAY)}
    plain = read_ms(ms_dir / "night" / synthetic.ms_name(START))
    record = rows[plain.name]
    assert record.path == plain.path and record.hdf5_group == plain.hdf5_group
    assert record.start_mjd == pytest.approx(plain.start_mjd, abs=1e-9)
    assert (record.n_spw, record.n_channels, record.n_rows) == (
        plain.n_spw,
        plain.n_channels,
        plain.n_rows,
    )
    assert record.stage == "converted" and not record.calibrated
    calibrated = next(r for r in rows.values() if r.path != plain.path)
    assert calibrated.has_corrected_data and calibrated.stage == "calibrated"

    again = scan_ms(engine, [ms_dir])
    assert (len(again.read), again.unchanged) == (0, 2)
    assert counts(dbs) == (2, 0)


def test_a_damaged_ms_is_a_failure_and_the_others_land(dbs: Databases, ms_dir: Path) -> None:
    broken = synthetic.write_broken_ms(ms_dir / "night", START + dt.timedelta(hours=2), "truncated")
    result = scan_ms(dbs.engine("products"), [ms_dir])
    assert len(result.read) == 2 and [f.path for f in result.failures] == [str(broken.resolve())]
    failure = result.failures[0]
    assert failure.error_class == "CorruptCasaTableError" and str(broken.resolve()) in failure.error
    assert "\n" not in failure.error and failure.obs_date == DAY
    assert counts(dbs) == (2, 1)
    with dbs.connect("products") as conn:
        assert [f.path for f in repo.ms_failures(conn, DAY)] == [str(broken.resolve())]
        assert repo.get_ms(conn, str(broken.resolve())) is None

    # Written again, whole: the failure goes, the MS is indexed.
    shutil.rmtree(broken)
    synthetic.write_ms(broken.parent, START + dt.timedelta(hours=2))
    fixed = scan_ms(dbs.engine("products"), [ms_dir])
    assert len(fixed.read) == 1 and not fixed.failures
    assert counts(dbs) == (3, 0)


def test_a_rewritten_ms_is_read_again(dbs: Databases, ms_dir: Path) -> None:
    engine = dbs.engine("products")
    scan_ms(engine, [ms_dir])
    target = ms_dir / "night" / synthetic.ms_name(START)
    synthetic.add_corrected_data(target)  # what applycal does: table.dat is rewritten
    result = scan_ms(engine, [ms_dir])
    assert [s.path for s in result.read] == [str(target.resolve())]
    with dbs.connect("products") as conn:
        assert repo.get_ms(conn, str(target.resolve())).stage == "calibrated"
    assert counts(dbs) == (2, 0)


def test_images_named_after_an_ms_are_linked(dbs: Databases, ms_dir: Path) -> None:
    stem = START.strftime("%Y-%m-%dT%H:%M:%S")
    linked = add_image(dbs, f"/images/{stem}_dec+16.3.fits")
    other = add_image(dbs, f"/images/{stem}0_not_this_one.fits")  # a longer timestamp-like name
    unrelated = add_image(dbs, "/images/something_else.fits")
    result = scan_ms(dbs.engine("products"), [ms_dir])
    assert result.images_linked == 1
    with dbs.connect("products") as conn:
        ms = repo.get_ms(conn, str((ms_dir / "night" / f"{stem}.ms").resolve()))
        assert ms is not None and ms.stage == "imaged" and ms.n_images == 1
        links = dict(conn.execute(select(repo.IMAGES.c.id, repo.IMAGES.c.ms_id)).all())
    assert links[linked] == ms.id and links[other] is None and links[unrelated] is None
    # an image catalogued after its MS is linked by the catalogue's own pass
    late = add_image(dbs, f"/images/{stem}.fits")
    with dbs.begin("products") as conn:
        assert repo.link_images_to_ms(conn, [DAY]) == 1
        assert repo.link_images_to_ms(conn, [DAY]) == 0  # idempotent
        assert repo.get_ms(conn, ms.id).n_images == 2
    assert late


def test_bounded_reads_leave_the_rest_for_the_next_scan(dbs: Databases, ms_dir: Path) -> None:
    engine = dbs.engine("products")
    first = scan_ms(engine, [ms_dir], max_reads=1)
    assert (len(first.read), first.deferred) == (1, 1)
    second = scan_ms(engine, [ms_dir], max_reads=1)
    assert (len(second.read), second.deferred, second.unchanged) == (1, 0, 1)
    assert counts(dbs) == (2, 0)


def test_missing_directory_is_reported(dbs: Databases, tmp_path: Path) -> None:
    result = scan_ms(dbs.engine("products"), [tmp_path / "nowhere"])
    assert result.missing_dirs == [tmp_path / "nowhere"] and result.found == 0
    assert "missing dirs: " + str(tmp_path / "nowhere") in result.summary()
