"""fits_ingest_sensor evaluated as the daemon does: fresh context per tick, previous cursor."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from pipeline_defs.sensors.ingest import SENSOR_NAME, fits_ingest_sensor
from resources import engines
from resources.dagster_resources import Database, FITSService
from resources.database import Databases
from resources.fits.synthetic import ImageSpec, write_image
from resources.repositories import ingest as ingest_queue
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    queue_rows,
    write_samples,
)
from tests.pipeline_defs.sensors.support import ListHandler

DAY1, DAY2, DAY3 = (SAMPLE_START + dt.timedelta(days=i) for i in range(3))


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


def tick(cursor: str | None = None) -> tuple[dg.SensorResult, ListHandler]:
    """One evaluation with brand-new resources, as after a daemon restart."""
    handler = ListHandler()
    with dg.build_sensor_context(
        cursor=cursor,
        resources={"database": Database(), "fits": FITSService()},
        instance=dg.DagsterInstance.ephemeral(),
    ) as context:
        context.log.addHandler(handler)
        result = fits_ingest_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result, handler


def _requests(result: dg.SensorResult) -> dict[str, dg.RunRequest]:
    return {r.partition_key: r for r in result.run_requests or []}


def test_new_files_one_request_per_date_then_nothing(dbs: Databases, data_dir: Path) -> None:
    expected = Expected(write_samples(data_dir / "incoming"))
    first, log = tick()
    requests = _requests(first)
    assert set(requests) == {d.isoformat() for d in (DAY1, DAY2, DAY3)}
    assert len(first.run_requests or []) == 3
    rows = queue_rows(dbs)
    for key, request in requests.items():
        day = dt.date.fromisoformat(key)
        assert request.run_key is not None and request.run_key.startswith(f"{SENSOR_NAME}:{key}:")
        pending = [p for p, r in rows.items() if r.obs_date == day and r.state == "pending"]
        assert request.tags["contimg/pending_files"] == str(len(pending))
        assert set(expected.catalogued(day)) <= set(pending)
    assert len({r.run_key for r in requests.values()}) == 3
    # the files without a usable header are reported, not requested
    warnings = "\n".join(log.messages(logging.WARNING))
    for kind in ("not_fits", "bad_header_bytes", "missing_date_obs"):
        assert str(expected.by_kind(kind).path) in warnings

    second, _ = tick(first.cursor)
    assert not second.run_requests
    assert second.skip_reason is not None
    assert "no new work" in (second.skip_reason.skip_message or "")
    assert "0 new" in (second.skip_reason.skip_message or "")

    # a restarted daemon that lost its cursor asks again with the same run keys, which the
    # instance de-duplicates: the same work is never launched twice
    lost, _ = tick(None)
    assert {r.run_key for r in lost.run_requests or []} == {r.run_key for r in requests.values()}


def test_modified_file_requests_its_date_only(dbs: Databases, data_dir: Path) -> None:
    files = write_samples(data_dir / "incoming", broken=False)
    first, _ = tick()
    old_key = _requests(first)[DAY2.isoformat()].run_key
    # the runs happen: every row of days 1-3 completed
    engine = dbs.engine("ingest")
    for row in ingest_queue.claim(engine, limit=100, worker="test-run"):
        ingest_queue.mark_completed(engine, row.id)
    target = next(f.path for f in files if f.obs_date == DAY2)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    second, _ = tick(first.cursor)
    requests = _requests(second)
    assert set(requests) == {DAY2.isoformat()}
    assert requests[DAY2.isoformat()].run_key != old_key
    assert requests[DAY2.isoformat()].tags["contimg/pending_files"] == "1"
    assert queue_rows(dbs)[str(target)].state == "pending"
    # restart with the cursor of that tick: nothing is requested twice
    third, _ = tick(second.cursor)
    assert not third.run_requests


def test_cursor_survives_restart_and_header_budget(
    dbs: Databases, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_samples(data_dir / "incoming", broken=False)
    monkeypatch.setenv("CONTIMG_SENSOR_MAX_HEADER_READS", "5")
    cursor = None
    seen: list[tuple[str, str]] = []
    for _ in range(5):
        result, _ = tick(cursor)
        assert len(json.loads(result.cursor or "{}")["requested"]) <= 3
        seen += [(r.partition_key, r.run_key) for r in result.run_requests or []]
        cursor = result.cursor
        if result.run_requests is None or not result.run_requests:
            break
    assert len(queue_rows(dbs)) == len(files)  # everything found within the budgeted ticks
    assert len(seen) == len(set(seen))  # never the same request twice
    final = {}
    for key, run_key in seen:
        final[key] = run_key  # the last request of each day covers all its files
    assert set(final) == {d.isoformat() for d in (DAY1, DAY2, DAY3)}
    again, _ = tick(cursor)
    assert not again.run_requests


def test_dates_outside_the_partitions(dbs: Databases, data_dir: Path) -> None:
    incoming = data_dir / "incoming"
    future = write_image(
        incoming / "future.fits",
        ImageSpec(date_obs=dt.datetime(2099, 1, 1, 3, tzinfo=dt.UTC), dec_deg=16.3, size=32),
    )
    early = write_image(
        incoming / "early.fits",
        ImageSpec(date_obs=dt.datetime(2020, 1, 1, 3, tzinfo=dt.UTC), dec_deg=16.3, size=32),
    )
    os.utime(future, (1.7e9, 1.7e9))  # written in 2023: the date is in the header only
    result, log = tick()
    assert not result.run_requests
    warnings = log.messages(logging.WARNING)
    assert any("dated 2099-01-01: no such partition yet" in w for w in warnings)
    assert any(str(early) in w and "ObservationDateOutOfRangeError" in w for w in warnings)
    rows = queue_rows(dbs)
    assert rows[str(future)].state == "pending"
    assert (rows[str(early)].state, rows[str(early)].error_class) == (
        "failed",
        "ObservationDateOutOfRangeError",
    )
    # not remembered as requested: once the partition exists it will be asked for
    assert "2099-01-01" not in json.loads(result.cursor or "{}")["requested"]


def test_no_second_run_while_the_first_consumes_the_queue(dbs: Databases, data_dir: Path) -> None:
    """A run in progress moves rows pending -> in_progress -> completed: that is not new work."""
    write_samples(data_dir / "incoming", broken=False)
    first, _ = tick()
    assert len(first.run_requests or []) == 3
    engine = dbs.engine("ingest")
    # the DAY1 run is half-way: two rows done, one held, the rest still pending
    done = ingest_queue.claim(engine, obs_date=DAY1, limit=2, worker="host:1:run-day1")
    for row in done:
        ingest_queue.mark_completed(engine, row.id)
    ingest_queue.claim(engine, obs_date=DAY1, limit=1, worker="host:1:run-day1")
    second, _ = tick(first.cursor)
    assert not second.run_requests
    # a late file of DAY1 is new work: one more run for that day only
    write_image(
        data_dir / "incoming" / "late.fits",
        ImageSpec(date_obs=dt.datetime(2025, 10, 1, 23, tzinfo=dt.UTC), dec_deg=16.3, size=32),
    )
    third, _ = tick(second.cursor)
    assert set(_requests(third)) == {DAY1.isoformat()}


def test_unreadable_files_are_named_in_the_tick(dbs: Databases, data_dir: Path) -> None:
    expected = Expected(write_samples(data_dir / "incoming"))
    undated = [
        expected.by_kind(k).path for k in ("not_fits", "bad_header_bytes", "missing_date_obs")
    ]
    first, log = tick()
    assert first.run_requests
    # one short line per file: its path once, the error class, the message without the path
    warnings = log.messages(logging.WARNING)
    for path in undated:
        [line] = [m for m in warnings if str(path) in m]
        assert line.startswith(f"cannot catalogue {path}: ") and line.count(str(path)) == 1
    [info] = [m for m in log.messages(logging.INFO) if "requesting runs" in m]
    assert "failed this tick: " in info
    for path in undated:
        row = queue_rows(dbs)[str(path)]
        assert f"{path.name} ({row.error_class})" in info
    assert "3 files failed before a date could be read (`contimg queue --failed`)" in info

    second, _ = tick(first.cursor)  # nothing new: the skip reason still says they are there
    reason = (second.skip_reason.skip_message or "") if second.skip_reason else ""
    assert reason.startswith("no new work: ")
    assert "failed this tick" not in reason
    assert reason.endswith(
        "; 3 files failed before a date could be read (`contimg queue --failed`)"
    )


def test_unmigrated_ingest_database_fails_the_tick_with_the_fix(data_dir: Path) -> None:
    from resources.database import forget_schema_checks
    from resources.errors import DatabaseNotMigratedError

    forget_schema_checks()
    with pytest.raises(DatabaseNotMigratedError, match=r"database 'ingest'.*contimg db upgrade"):
        tick()
    assert not (data_dir / "ingest.sqlite3").exists()  # reported, not created
