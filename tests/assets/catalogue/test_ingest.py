"""ingest_day on real migrated databases (SQLite files, and one PostgreSQL database) with the
sample data: exactly the expected rows, typed failures, idempotence, crash recovery, repair."""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from assets.catalogue import ingest as catalogue_ingest
from assets.catalogue.ingest import IngestReport, ingest_day
from resources.database import Databases
from resources.fits.synthetic import BANDWIDTH_HZ, FREQ_HZ
from resources.fits_service import FitsMetadataService
from resources.ingest_scan import scan_incoming
from resources.repositories import ingest as ingest_queue
from resources.repositories.data_registry import REGISTRY
from resources.repositories.products import IMAGES, upsert_images
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    failed_classes,
    image_paths,
    migrated_single_url,
    queue_rows,
    write_samples,
)
from tests.resources.fits.helpers import independent_centre

DAY1, DAY2, DAY3 = (SAMPLE_START + dt.timedelta(days=i) for i in range(3))


@pytest.fixture
def expected(data_dir: Path) -> Expected:
    return Expected(write_samples(data_dir / "incoming"))


def dead_pid() -> int:
    """The pid of a process of this host that has certainly exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _image_row(dbs: Databases, path: str) -> dict:
    with dbs.connect("products") as conn:
        return dict(conn.execute(select(IMAGES).where(IMAGES.c.path == path)).mappings().one())


def check_full_ingest(dbs: Databases, service: FitsMetadataService, expected: Expected) -> None:
    """Ingest the three sample days and check every row; shared by SQLite and PostgreSQL."""
    report = ingest_day(dbs, service, DAY1, run_id="run-1", batch_size=3)
    paths = image_paths(dbs)
    assert Counter(paths) == Counter(expected.catalogued(DAY1))  # no other day, no duplicate
    failed_day1 = expected.failed(DAY1)
    # the header-fine broken files fail here, in fits_metadata; the others already at the scan
    assert {f.path: f.error_class for f in report.failures} == {
        p: c for p, c in failed_day1.items() if queue_rows(dbs)[p].obs_date == DAY1
    }
    assert report.parsed == len(expected.catalogued(DAY1))
    assert failed_classes(dbs) == expected.failed()  # every broken file, with its class
    rows = queue_rows(dbs)
    for path in expected.catalogued(DAY1):
        assert rows[path].state == "completed" and rows[path].completed_at is not None
    for day in (DAY2, DAY3):
        for path in expected.catalogued(day):
            assert rows[path].state == "pending"  # scanned, not processed: another partition
    assert ingest_queue.counts(dbs.engine("ingest"), obs_date=DAY1)["in_progress"] == 0

    for day in (DAY2, DAY3):
        r = ingest_day(dbs, service, day, run_id=f"run-{day}")
        assert r.failures == [] and r.parsed == len(expected.catalogued(day))
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued())

    # the metadata of one ordinary sample, checked against astropy directly
    sample = next(f for f in expected.files if f.kind == "good" and f.obs_date == DAY2)
    row = _image_row(dbs, str(sample.path))
    ra, dec = independent_centre(sample.path, 0)
    assert math.isclose(row["ra_deg"], ra, abs_tol=1e-9)
    assert math.isclose(row["dec_deg"], dec, abs_tol=1e-9)
    assert row["dec_deg"] == pytest.approx(54.6, abs=1e-6)  # day 2 observes the +54.6 strip
    assert row["beam_major_arcsec"] == pytest.approx(20.0)
    assert row["beam_minor_arcsec"] == pytest.approx(12.0)
    assert row["beam_pa_deg"] == pytest.approx(15.0)
    assert row["freq_hz"] == pytest.approx(FREQ_HZ)
    assert row["bandwidth_hz"] == pytest.approx(BANDWIDTH_HZ)
    assert row["obs_date"] == DAY2
    stamp = dt.datetime.strptime(sample.path.name[:19], "%Y-%m-%dT%H:%M:%S")
    assert row["date_obs"].replace(tzinfo=None) == stamp
    assert (row["width"], row["height"], row["hdu_index"]) == (64, 64, 0)
    assert row["size_bytes"] == sample.path.stat().st_size
    # the NaN-beam file is catalogued, its beam left empty
    nan_beam = _image_row(dbs, str(expected.by_kind("nan_beam").path))
    assert nan_beam["beam_major_arcsec"] is None and nan_beam["beam_minor_arcsec"] is None
    # the tile-compressed image of day 3 sits in HDU 1
    fz = next(f for f in expected.files if f.path.name.endswith(".fz"))
    assert _image_row(dbs, str(fz.path))["hdu_index"] == 1
    # every catalogued image has its `image` product in the registry, in staging
    with dbs.connect("data_registry") as conn:
        products = conn.execute(
            select(REGISTRY.c.product_type, REGISTRY.c.status, REGISTRY.c.stage_path)
        ).all()
    assert sorted(p.stage_path for p in products) == sorted(expected.catalogued())
    assert {(p.product_type, p.status) for p in products} == {("image", "staging")}

    # a second run of every day is a no-op on the rows
    before_images = {p: _image_row(dbs, p)["id"] for p in expected.catalogued()}
    before_queue = {p: (r.state, r.error_class) for p, r in queue_rows(dbs).items()}
    for day in (DAY1, DAY2, DAY3):
        again = ingest_day(dbs, service, day, run_id="run-2")
        assert again.parsed == 0
        assert again.already_done == len(expected.catalogued(day))
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued())
    assert {p: _image_row(dbs, p)["id"] for p in expected.catalogued()} == before_images
    assert {p: (r.state, r.error_class) for p, r in queue_rows(dbs).items()} == before_queue


def test_ingest_day_sqlite(
    dbs: Databases, service: FitsMetadataService, expected: Expected
) -> None:
    check_full_ingest(dbs, service, expected)


@pytest.mark.postgres
def test_ingest_day_postgres(
    pg_url: str, data_dir: Path, service: FitsMetadataService, expected: Expected
) -> None:
    dbs = migrated_single_url(pg_url)
    check_full_ingest(dbs, service, expected)


def test_dead_worker_claims_released_and_completed(
    dbs: Databases, service: FitsMetadataService, expected: Expected, data_dir: Path
) -> None:
    ingest = dbs.engine("ingest")
    scan_incoming(ingest, [data_dir / "incoming"])
    host = socket.gethostname()
    dead = f"{host}:{dead_pid()}:killed-run"
    claimed = ingest_queue.claim(ingest, obs_date=DAY1, limit=3, worker=dead)
    assert len(claimed) == 3
    # the killed run had already written the images of its first batch: the repeat must not
    # duplicate them
    metas = [o.metadata for o in service.parse_many([r.path for r in claimed]) if o.metadata]
    assert metas
    with dbs.begin("products") as conn:
        upsert_images(conn, metas)
    # a claim of a live process of this host, and one of another host, are left alone
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        held_live = ingest_queue.claim(
            ingest, obs_date=DAY1, limit=1, worker=f"{host}:{live.pid}:running"
        )
        held_remote = ingest_queue.claim(
            ingest, obs_date=DAY1, limit=1, worker="another-host:4242:running"
        )
        report = ingest_day(dbs, service, DAY1, run_id="rerun")
    finally:
        live.kill()
        live.wait()
    assert report.released == 3
    rows = queue_rows(dbs)
    for r in claimed:
        assert rows[r.path].state in ("completed", "failed")
        assert rows[r.path].attempts == 2
    for r in (*held_live, *held_remote):
        assert rows[r.path].state == "in_progress"  # not ours to take back (yet)
    assert Counter(image_paths(dbs)) == Counter(
        expected.catalogued(DAY1) - {r.path for r in (*held_live, *held_remote)}
    )

    # past the stale limit, the rows of the other host come back too, and then nothing is lost
    with dbs.begin("ingest") as conn:
        conn.execute(
            update(ingest_queue.QUEUE)
            .where(ingest_queue.QUEUE.c.state == "in_progress")
            .values(claimed_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
        )
    final = ingest_day(dbs, service, DAY1, run_id="rerun-2")
    assert final.released == 2
    assert ingest_queue.counts(ingest, obs_date=DAY1)["in_progress"] == 0
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued(DAY1))


def test_own_live_claims_are_not_released(
    dbs: Databases, service: FitsMetadataService, expected: Expected, data_dir: Path
) -> None:
    ingest = dbs.engine("ingest")
    scan_incoming(ingest, [data_dir / "incoming"])
    mine = f"{socket.gethostname()}:{os.getpid()}:other-run-in-this-process"
    held = ingest_queue.claim(ingest, obs_date=DAY2, limit=2, worker=mine)
    report = ingest_day(dbs, service, DAY2, run_id="here", scan=False)
    assert report.released == 0
    assert {queue_rows(dbs)[r.path].state for r in held} == {"in_progress"}
    assert len(image_paths(dbs, DAY2)) == len(expected.catalogued(DAY2)) - 2


def test_waiting_for_another_runs_claims_then_taking_back_what_it_leaves(
    dbs: Databases,
    service: FitsMetadataService,
    expected: Expected,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two runs of one day at once (the asset passes `wait_for_others`): the one that finds the
    rest claimed waits, rather than going on to grade a day whose images are not all there, and
    catalogues what the other leaves when it dies. Nothing is lost or doubled."""
    ingest = dbs.engine("ingest")
    scan_incoming(ingest, [data_dir / "incoming"])
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    other = f"{socket.gethostname()}:{live.pid}:another-run"
    held = ingest_queue.claim(ingest, obs_date=DAY2, limit=2, worker=other)
    assert len(held) == 2
    waiting = threading.Event()
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        waiting.set()  # the run found the other's claims and waits for them
        real_sleep(seconds)

    monkeypatch.setattr(catalogue_ingest.time, "sleep", sleep)
    done: dict[str, object] = {}

    def run() -> None:
        done["report"] = ingest_day(
            dbs, service, DAY2, run_id="here", scan=False, wait_for_others=True
        )

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert waiting.wait(60), "the run never waited for the other run's claims"
        # It cannot end while the other run lives and holds its claims.
        assert worker.is_alive()
    finally:
        live.kill()
        live.wait()
    worker.join(120)
    assert not worker.is_alive()
    report = done["report"]
    assert isinstance(report, IngestReport) and report.released == 2
    assert ingest_queue.counts(ingest, obs_date=DAY2)["in_progress"] == 0
    assert Counter(image_paths(dbs, DAY2)) == Counter(expected.catalogued(DAY2))


def test_completed_row_without_image_is_repaired(
    dbs: Databases, service: FitsMetadataService, expected: Expected
) -> None:
    ingest_day(dbs, service, DAY3, run_id="first")
    victim = sorted(expected.catalogued(DAY3))[1]
    with dbs.begin("products") as conn:
        conn.execute(delete(IMAGES).where(IMAGES.c.path == victim))
    assert victim not in image_paths(dbs)
    report = ingest_day(dbs, service, DAY3, run_id="repair")
    assert report.parsed == 1 and report.failures == []
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued(DAY3))
    assert queue_rows(dbs)[victim].state == "completed"


def test_failed_file_fixed_then_ingested(
    dbs: Databases, service: FitsMetadataService, expected: Expected
) -> None:
    """A run after a fix retries the day's failed files (retry_failed), not only new ones."""
    ingest_day(dbs, service, DAY1, run_id="first")
    truncated = expected.by_kind("truncated")
    good = next(f for f in expected.files if f.kind == "good" and f.obs_date == DAY1)
    # the operator puts a good copy in place under the same name, keeping the old mtime/size
    # out of the picture by copying a complete file over it
    data = good.path.read_bytes()
    truncated.path.write_bytes(data)
    os.utime(truncated.path, ns=(0, good.path.stat().st_mtime_ns))
    report = ingest_day(dbs, service, DAY1, run_id="after-fix")
    assert str(truncated.path) in image_paths(dbs, DAY1)
    assert report.parsed == 1
    assert queue_rows(dbs)[str(truncated.path)].state == "completed"


class ChangingService(FitsMetadataService):
    """Parses for real; during the first batch the file `victim` is rewritten and a concurrent
    scan (the sensor) re-queues it, as happens when a file is replaced while a run holds it."""

    def __init__(self, victim: Path, incoming: Path, engine, **kw: object) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kw)  # type: ignore[arg-type]
        self.victim, self.incoming, self.engine = victim, incoming, engine
        self.done = False

    def parse_many(self, paths, max_workers=None, *, require_date=False):  # type: ignore[no-untyped-def]
        outcomes = super().parse_many(paths, max_workers, require_date=require_date)
        if not self.done and str(self.victim) in [str(p) for p in paths]:
            self.done = True
            st = self.victim.stat()
            os.utime(self.victim, ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))
            scan_incoming(self.engine, [self.incoming])
        return outcomes


def test_file_changed_while_claimed_is_processed_again(
    dbs: Databases, expected: Expected, data_dir: Path, tmp_path: Path
) -> None:
    victim = min(Path(p) for p in expected.catalogued(DAY2))
    service = ChangingService(
        victim, data_dir / "incoming", dbs.engine("ingest"), cache_path=tmp_path / "c.sqlite3"
    )
    report = ingest_day(dbs, service, DAY2, run_id="changing", batch_size=2)
    assert service.done
    assert Counter(image_paths(dbs, DAY2)) == Counter(expected.catalogued(DAY2))
    row = queue_rows(dbs)[str(victim)]
    assert row.state == "completed"
    assert row.mtime_ns == victim.stat().st_mtime_ns  # the new content was catalogued
    assert _image_row(dbs, str(victim))["mtime_ns"] == victim.stat().st_mtime_ns
    assert report.parsed == len(expected.catalogued(DAY2)) + 1
