"""Products on disk stay one per image: a database recreated and re-ingested replaces the QA
reports instead of orphaning them, and what a killed run left half-written is swept by the next
run (never a live writer's file)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from assets.catalogue.ingest import ingest_day
from assets.publishing import files
from assets.publishing.publish import publish_dir
from assets.qa.grading import grade_day, qa_report_dir
from assets.qa.statistics import QAThresholds
from assets.thumbnails.day import thumbnails_day
from resources import engines
from resources.database import Databases
from resources.fits.synthetic import ImageSpec, write_image
from resources.fits_service import FitsMetadataService
from resources.repositories.data_registry import REGISTRY
from resources.repositories.products import IMAGES, QA, THUMBS
from resources.settings import DATABASE_NAMES, thumbnail_dir
from tests.fixtures_pipeline import SAMPLE_START, migrated_sqlite, write_samples
from tests.pipeline_defs.scale_support import REPO
from tests.processes import child_at, kill9

DAY = SAMPLE_START


def _count(dbs: Databases, name: str, table) -> int:  # type: ignore[no-untyped-def]
    with dbs.connect(name) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _day_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in (folder / DAY.isoformat()).glob(pattern) if not p.name.startswith("."))


def _hidden(*folders: Path) -> list[Path]:
    return [p for f in folders if f.is_dir() for p in f.rglob(".*") if p.is_file()]


def test_recreated_database_reingest_replaces_reports_not_orphans(
    data_dir: Path, service: FitsMetadataService
) -> None:
    write_samples(data_dir / "incoming", days=1, per_day=4, broken=False)
    dbs = migrated_sqlite(data_dir)
    ingest_day(dbs, service, DAY, run_id="first")
    grade_day(dbs, DAY, QAThresholds())
    thumbnails_day(dbs, DAY, size=32)
    n = _count(dbs, "products", IMAGES)
    first_ids = _ids(dbs)
    reports = _day_files(qa_report_dir(), "*.qa.json")
    assert len(reports) == n
    # An earlier version's name for one report (`<file name>.<image id>.qa.json`) is on disk too.
    legacy_image = min(first_ids)
    legacy = qa_report_dir() / DAY.isoformat() / f"{Path(legacy_image).name}.7.qa.json"
    legacy.write_text("{}")

    # The databases are recreated; another day's image is catalogued first, so every image of
    # DAY gets a new id when it is ingested again.
    engines.dispose_all()
    for name in DATABASE_NAMES:
        (data_dir / f"{name}.sqlite3").unlink()
    dbs = migrated_sqlite(data_dir)
    other = DAY + dt.timedelta(days=1)
    write_image(
        data_dir / "incoming" / "other.fits",
        ImageSpec(date_obs=dt.datetime(2025, 10, 2, 1, 0, tzinfo=dt.UTC), dec_deg=10.0, size=64),
    )
    ingest_day(dbs, service, other, run_id="other")
    ingest_day(dbs, service, DAY, run_id="again")
    again_ids = _ids(dbs)
    assert set(again_ids) == set(first_ids)
    assert all(again_ids[p] != first_ids[p] for p in first_ids)
    grade_day(dbs, DAY, QAThresholds())
    thumbnails_day(dbs, DAY, size=32)

    assert _count(dbs, "products", QA) == _count(dbs, "products", THUMBS) == n
    assert len(_day_files(qa_report_dir(), "*.qa.json")) == n  # replaced, legacy one too
    assert not legacy.exists()
    assert len(_day_files(thumbnail_dir(), "*.png")) == n
    for kind in ("qa", "thumbnail"):
        assert len(_day_files(publish_dir() / kind, "*")) == n
    assert _count(dbs, "data_registry", REGISTRY) == 3 * n + 1  # + the other day's image


def _ids(dbs: Databases) -> dict[str, int]:
    with dbs.connect("products") as conn:
        rows = conn.execute(select(IMAGES.c.path, IMAGES.c.id).where(IMAGES.c.obs_date == DAY))
        return {path: i for path, i in rows}


_KILLED_THUMBNAILER = """
import datetime as dt, os, sys
from assets.thumbnails.day import thumbnails_day
from resources.database import Databases
from tests.fixtures_pipeline import sqlite_urls
from pathlib import Path
real = os.replace
calls = []
def blocked(src, dst):
    calls.append(dst)
    if len(calls) == 2:  # the first thumbnail is in place, the second is half-way
        print("blocked", src, flush=True)
        sys.stdin.read()
    real(src, dst)
os.replace = blocked
dbs = Databases(sqlite_urls(Path(os.environ["CONTIMG_DATA_DIR"])))
thumbnails_day(dbs, dt.date.fromisoformat(sys.argv[1]), size=32, max_workers=1)
"""


def test_thumbnail_run_killed_mid_write_is_swept_and_rerun_counts_right(
    data_dir: Path, service: FitsMetadataService
) -> None:
    write_samples(data_dir / "incoming", days=1, per_day=4, broken=False)
    dbs = migrated_sqlite(data_dir)
    ingest_day(dbs, service, DAY, run_id="first")
    n = _count(dbs, "products", IMAGES)
    args = [sys.executable, "-c", _KILLED_THUMBNAILER, DAY.isoformat()]
    with child_at(args, "blocked ", cwd=REPO) as (proc, line):
        kill9(proc)
    left = _hidden(thumbnail_dir())
    assert [p.name for p in left] == [Path(line.split()[1]).name]
    assert f".{proc.pid}." in left[0].name and left[0].name.startswith(".")
    assert len(_day_files(thumbnail_dir(), "*.png")) == 1

    report = thumbnails_day(dbs, DAY, size=32)  # the next run
    assert _hidden(thumbnail_dir(), publish_dir()) == []
    assert report.rendered == n and report.written == n - 1  # the finished one was identical
    assert len(_day_files(thumbnail_dir(), "*.png")) == n == _count(dbs, "products", THUMBS)


def test_sweep_keeps_live_writers_and_removes_dead_and_legacy_leftovers(tmp_path: Path) -> None:
    folder = tmp_path / "day"
    folder.mkdir()
    mine = files.temp_path(folder / "a.png")  # this (live) process
    mine.write_bytes(b"x")
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                               stdin=subprocess.PIPE)  # fmt: skip
    try:
        live = folder / f".b.png{files.MARKER}{files._host()}.{sleeper.pid}.00aa11bb"
        live.write_bytes(b"x")
        dead_proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                   capture_output=True, text=True, check=True)  # fmt: skip
        dead = folder / f".c.png{files.MARKER}{files._host()}.{dead_proc.stdout.strip()}.00aa11bb"
        dead.write_bytes(b"x")
        remote = folder / f".d.png{files.MARKER}otherhost.1.00aa11bb"
        remote.write_bytes(b"x")
        old_remote = folder / f".e.png{files.MARKER}otherhost.1.00aa11bb"
        old_remote.write_bytes(b"x")
        legacy_new = folder / ".f.png.k2j3h4g5.tmp"
        legacy_new.write_bytes(b"x")
        legacy_old = folder / ".g.qa.json.tmp"
        legacy_old.write_bytes(b"x")
        product = folder / "h.png"
        product.write_bytes(b"x")
        past = time.time() - files.STALE_AFTER - 60
        os.utime(old_remote, (past, past))
        os.utime(legacy_old, (past, past))
        report = files.sweep_stale([folder, tmp_path / "missing"])
        assert sorted(p.name for p in report.removed) == sorted(
            [dead.name, old_remote.name, legacy_old.name]
        )
        left = sorted(p.name for p in folder.iterdir())
        assert left == sorted([mine.name, live.name, remote.name, legacy_new.name, product.name])
    finally:
        sleeper.kill()
        sleeper.wait(10)
    shutil.rmtree(folder)
