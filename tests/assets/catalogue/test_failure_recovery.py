"""A failing `fits_metadata` step gives its claims back at once (no re-run needed), and a file
that vanished between its discovery and its processing is `missing`, not a parse failure.

The faults are real: a `sqlite3.OperationalError('database or disk is full')` raised the way
SQLAlchemy raises it (wrapped in `sqlalchemy.exc.OperationalError`) from the products write, the
PostgreSQL backend of the products transaction terminated with `pg_terminate_backend` from
another connection, and files removed from (and put back into) the incoming directory.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from assets.catalogue import ingest as catalogue_ingest
from assets.catalogue.definitions import day_metadata
from assets.catalogue.ingest import ingest_day
from pipeline_defs.cli import main
from resources.database import Databases
from resources.errors import DatabaseConnectionError
from resources.fits_service import FitsMetadataService
from resources.ingest_scan import scan_incoming
from resources.repositories import ingest as ingest_queue
from tests.fixtures_pipeline import (
    SAMPLE_START,
    image_paths,
    migrated_single_url,
    migrated_sqlite,
    queue_rows,
    write_samples,
)
from tests.services import pg_execute_admin

DAY1 = SAMPLE_START


@pytest.fixture
def samples(data_dir: Path) -> list[Path]:
    """Four good files per day, three days, in <data dir>/incoming (the default incoming dir)."""
    files = write_samples(data_dir / "incoming", broken=False)
    return [f.path.resolve() for f in files if f.obs_date == DAY1]


def fail_second_upsert(
    monkeypatch: pytest.MonkeyPatch, fault: Callable[[Connection], None]
) -> list[list[str]]:
    """Let the first batch's products write through; inject `fault` into the second one."""
    real = catalogue_ingest.upsert_images
    calls: list[list[str]] = []

    def upsert(conn: Connection, metas):  # type: ignore[no-untyped-def]
        calls.append([m.path for m in metas])
        if len(calls) == 2:
            fault(conn)
        return real(conn, metas)

    monkeypatch.setattr(catalogue_ingest, "upsert_images", upsert)
    return calls


def disk_full(_conn: Connection) -> None:
    raise sa_exc.OperationalError(
        "INSERT INTO images ...", {}, sqlite3.OperationalError("database or disk is full")
    )


def queue_cli(*args: str) -> dict:
    result = CliRunner().invoke(main, ["queue", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def check_released(dbs: Databases, calls: list[list[str]], caught: BaseException) -> None:
    """Right after the failure: nothing in_progress, stored images completed, the rest pending."""
    first, failing = calls
    rows = queue_rows(dbs)
    assert {p: rows[p].state for p in first} == dict.fromkeys(first, "completed")
    assert {p: rows[p].state for p in failing} == dict.fromkeys(failing, "pending")
    assert {p: rows[p].claimed_by for p in failing} == dict.fromkeys(failing)
    assert sorted(image_paths(dbs, DAY1)) == sorted(first)  # the failing batch wrote nothing
    counts = ingest_queue.counts(dbs.engine("ingest"), obs_date=DAY1)
    assert counts["in_progress"] == 0
    assert counts["completed"] == 2 and counts["pending"] == 2
    assert "released 2 claims of the failed step: 0 completed" in "\n".join(
        getattr(caught, "__notes__", [])
    )


def test_disk_full_mid_batch_releases_claims_sqlite(
    dbs_sqlite: Databases,
    service: FitsMetadataService,
    samples: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dbs = dbs_sqlite
    calls = fail_second_upsert(monkeypatch, disk_full)
    logged: list[str] = []
    with pytest.raises(sa_exc.OperationalError, match="database or disk is full") as caught:
        ingest_day(dbs, service, DAY1, run_id="run-full", batch_size=2, log=logged.append)
    check_released(dbs, calls, caught.value)
    assert logged == [
        (
            "released 2 claims of the failed step: 0 completed (their images were committed), "
            "2 back to pending"
        )
    ]
    # `contimg queue` tells the same story at once (the whole queue: 3 days of 4 files)
    shown = queue_cli()
    assert shown["counts"] == {**ingest_queue.counts(dbs.engine("ingest")), "in_progress": 0}
    assert shown["counts"]["completed"] == 2 and shown["stuck"] == []
    # and the next run simply finishes the day
    monkeypatch.undo()
    again = ingest_day(dbs, service, DAY1, run_id="run-after", batch_size=2)
    assert again.parsed == 2 and sorted(image_paths(dbs, DAY1)) == sorted(map(str, samples))


def test_failure_after_images_committed_marks_them_completed(
    dbs_sqlite: Databases,
    service: FitsMetadataService,
    samples: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The products transaction committed, the queue's close failed (disk full on the ingest
    file): those rows become completed, not pending, since their images exist."""
    dbs = dbs_sqlite
    real = ingest_queue.mark_completed

    def full(bind, path_or_id):  # type: ignore[no-untyped-def]
        disk_full(bind)
        return real(bind, path_or_id)

    monkeypatch.setattr(ingest_queue, "mark_completed", full)
    with pytest.raises(sa_exc.OperationalError) as caught:
        ingest_day(dbs, service, DAY1, run_id="run-close", batch_size=2)
    rows = queue_rows(dbs)
    catalogued = set(image_paths(dbs, DAY1))
    assert len(catalogued) == 2
    assert {rows[p].state for p in catalogued} == {"completed"}
    day = {p: r for p, r in rows.items() if r.obs_date == DAY1}
    assert sorted(r.state for r in day.values()) == ["completed", "completed", "pending", "pending"]
    assert "released 2 claims of the failed step: 2 completed" in caught.value.__notes__[0]
    assert queue_cli()["counts"]["in_progress"] == 0


@pytest.mark.postgres
def test_terminated_backend_mid_batch_releases_claims_postgres(
    pg_url: str,
    service: FitsMetadataService,
    samples: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dbs = migrated_single_url(pg_url)

    def terminate(conn: Connection) -> None:
        pid = conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        pg_execute_admin(f"SELECT pg_terminate_backend({int(pid)})")

    calls = fail_second_upsert(monkeypatch, terminate)
    # The lost connection surfaces as SQLAlchemy's OperationalError, or as the typed
    # DatabaseConnectionError where resources/database.py translates it.
    with pytest.raises((sa_exc.OperationalError, DatabaseConnectionError)) as caught:
        ingest_day(dbs, service, DAY1, run_id="run-pg", batch_size=2)
    check_released(dbs, calls, caught.value)
    for name in ("PRODUCTS", "INGEST", "DATA_REGISTRY", "CAL_REGISTRY", "HDF5"):
        monkeypatch.setenv(f"CONTIMG_DB_{name}_URL", pg_url)
    shown = queue_cli()
    assert shown["counts"]["in_progress"] == 0 and shown["counts"]["completed"] == 2


@pytest.fixture
def dbs_sqlite(data_dir: Path) -> Databases:
    return migrated_sqlite(data_dir)


# --- files that vanish ---------------------------------------------------------------------------


def test_file_deleted_after_scan_is_missing_not_failed_and_comes_back(
    dbs_sqlite: Databases, service: FitsMetadataService, samples: list[Path], tmp_path: Path
) -> None:
    dbs = dbs_sqlite
    ingest = dbs.engine("ingest")
    scan_incoming(ingest, [samples[0].parent])
    gone = samples[1]
    kept = tmp_path / gone.name
    shutil.copy2(gone, kept)  # keeps size and mtime: the file comes back exactly as it was
    gone.unlink()

    report = ingest_day(dbs, service, DAY1, run_id="run-1")
    assert report.missing == [str(gone)] and report.failures == []
    assert report.parsed == 3
    row = queue_rows(dbs)[str(gone)]
    assert row.state == "missing" and row.error_class == ingest_queue.VANISHED_CLASS
    counts = ingest_queue.counts(ingest, obs_date=DAY1)
    assert counts == {
        "pending": 0,
        "in_progress": 0,
        "completed": 3,
        "failed": 0,
        "missing": 1,
    }
    meta = day_metadata(report, catalogued=3, elapsed=1.0)
    assert meta["missing_files"] == 1 and meta["failed_files"] == 0
    assert "1 missing (vanished)" in report.summary()

    # not retried: the next run neither claims it nor counts it as a failure
    again = ingest_day(dbs, service, DAY1, run_id="run-2")
    assert again.files == 0 and again.missing == [] and again.failures == []
    assert queue_rows(dbs)[str(gone)].attempts == row.attempts
    with ingest.connect() as conn:
        assert ingest_queue.failed_rows(conn, limit=None) == []
    assert ingest_queue.retry_failed(ingest) == 0

    # `contimg queue` counts it apart and lists it; `--failed` does not
    shown = queue_cli()
    assert shown["counts"]["missing"] == 1 and shown["counts"]["failed"] == 0
    assert [m["path"] for m in shown["missing"]] == [str(gone)]
    text = CliRunner().invoke(main, ["queue"]).output
    assert "missing: 1; vanished before processing" in text and str(gone) in text
    assert "failed: 0" in text
    assert "no failed files" in CliRunner().invoke(main, ["queue", "--failed"]).output

    # the file reappears, same size and mtime: discovered again, then catalogued
    digests_before = ingest_queue.pending_digests(ingest)
    shutil.copy2(kept, gone)
    scan = scan_incoming(ingest, [samples[0].parent])
    assert scan.registered_changed == 1
    assert queue_rows(dbs)[str(gone)].state == "pending"
    assert DAY1 in ingest_queue.pending_digests(ingest)
    assert DAY1 not in digests_before  # nothing was pending before: a new run key follows
    back = ingest_day(dbs, service, DAY1, run_id="run-3")
    assert back.parsed == 1 and back.missing == []
    assert ingest_queue.counts(ingest, obs_date=DAY1)["completed"] == 4
    assert sorted(image_paths(dbs, DAY1)) == sorted(map(str, samples))


def test_file_deleted_during_scan_is_not_queued_as_unreadable(
    dbs_sqlite: Databases, samples: list[Path]
) -> None:
    from resources.fits.parser import read_obs_time

    ingest = dbs_sqlite.engine("ingest")
    victim = str(samples[2])

    def read_time(path: str) -> dt.datetime | None:
        if path == victim:
            Path(path).unlink()  # removed between the listing and the header read
        return read_obs_time(path)

    result = scan_incoming(ingest, [samples[0].parent], read_time=read_time)
    assert result.vanished == 1 and result.failures == []
    assert "1 vanished while scanned (not queued)" in result.summary()
    rows = queue_rows(dbs_sqlite)
    assert victim not in rows and len(rows) == 11  # the other files of the three days
    assert ingest_queue.counts(ingest)["failed"] == 0
