"""The ingest repository on real SQLite and PostgreSQL databases: the queue's state machine and
the operator reads of `contimg queue`."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from migrations import runner
from resources.engines import build_engine
from resources.errors import IngestStateError, InvalidQueryError
from resources.repositories import ingest as q
from resources.settings import PoolSettings
from tests.resources.repositories.catalogue_data import migrated

DAY1 = dt.date(2025, 10, 5)
DAY2 = dt.date(2025, 10, 6)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'ingest.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_url")
    runner.upgrade("ingest", url, backup=False)
    eng = build_engine(url, PoolSettings(pool_size=4, max_overflow=4))
    yield eng
    eng.dispose()


def records(n: int, day: dt.date = DAY1, size: int = 100) -> list[q.FileRecord]:
    return [q.FileRecord(f"/in/{day}/f{i:05d}.fits", size, 1000 + i, day) for i in range(n)]


def test_register_new_changed_unchanged(engine: Engine) -> None:
    first = q.register_files(engine, records(1200))
    assert (first.inserted, first.changed, first.unchanged) == (1200, 0, 0)
    claimed = q.claim(engine, limit=3, worker="w1")
    q.mark_failed(engine, claimed[0].id, "NotFITSError", "no SIMPLE card")
    # change one failed and one in-progress file, mapping input accepted too
    again = records(1200)
    again[claimed[0].id - 1] = q.FileRecord(claimed[0].path, 999, 5, DAY1)
    second = q.register_files(
        engine,
        [*again, {"path": claimed[1].path, "size_bytes": 1, "mtime_ns": 1, "obs_date": None}],
    )
    assert (second.inserted, second.changed, second.unchanged) == (0, 2, 1198)
    row = q.get(engine, claimed[0].path)
    assert row is not None and row.state == "pending" and row.attempts == 0
    assert row.size_bytes == 999 and row.last_error is None and row.error_class is None
    row1 = q.get(engine, claimed[1].path)
    assert row1 is not None and row1.state == "pending" and row1.obs_date == DAY1  # kept
    untouched = q.get(engine, claimed[2].id)
    assert untouched is not None and untouched.state == "in_progress"
    # the worker holding the re-queued row can no longer complete it (content changed)
    with pytest.raises(IngestStateError, match="'pending' -> 'completed'"):
        q.mark_completed(engine, claimed[1].id)


def test_claim_order_filter_and_lifecycle(engine: Engine) -> None:
    q.register_files(engine, records(3, DAY2) + records(2, DAY1))
    day2 = q.claim(engine, obs_date=DAY2, limit=10, worker="w")
    assert [r.obs_date for r in day2] == [DAY2] * 3
    first = q.claim(engine, limit=1, worker="w")
    assert len(first) == 1
    assert first[0].obs_date == DAY1 and first[0].attempts == 1 and first[0].claimed_by == "w"
    done = q.mark_completed(engine, first[0].path)
    assert done.state == "completed" and done.completed_at is not None
    failed = q.mark_failed(engine, day2[0].id, "TruncatedFITSError", "short; password=hunter2")
    assert failed.error_class == "TruncatedFITSError" and "hunter2" not in (failed.last_error or "")
    assert q.counts(engine) == {
        "pending": 1,
        "in_progress": 2,
        "completed": 1,
        "failed": 1,
        "missing": 0,
    }
    assert q.retry_failed(engine, obs_date=DAY1) == 0
    assert q.retry_failed(engine, max_attempts=1) == 0
    assert q.retry_failed(engine) == 1
    retried = q.get(engine, day2[0].id)
    assert retried is not None and retried.state == "pending" and retried.attempts == 1
    assert q.claim(engine, limit=0, worker="w") == []


def test_illegal_transitions_are_refused(engine: Engine) -> None:
    q.register_files(engine, records(2))
    path = records(1)[0].path
    with pytest.raises(IngestStateError, match="'pending' -> 'completed'"):
        q.mark_completed(engine, path)
    with pytest.raises(IngestStateError, match="'pending' -> 'failed'"):
        q.mark_failed(engine, path, "X", "y")
    with pytest.raises(IngestStateError):
        q.transition(engine, path, "completed", "in_progress")  # not an edge at all
    with pytest.raises(IngestStateError, match="'pending' -> 'completed'"):
        q.transition(engine, path, "pending", "completed")
    with pytest.raises(IngestStateError, match="no row"):
        q.transition(engine, "/nope.fits", "pending", "in_progress")
    moved = q.transition(engine, path, "pending", "in_progress")
    assert moved.state == "in_progress" and moved.attempts == 1
    with pytest.raises(IngestStateError, match="'in_progress' -> 'in_progress'"):
        q.transition(engine, path, "pending", "in_progress")  # stale from_state
    q.mark_completed(engine, path)
    with pytest.raises(IngestStateError, match="'completed' -> 'pending'"):
        q.transition(engine, path, "failed", "pending")
    # the CHECK constraint refuses states outside the vocabulary, even from raw SQL
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(q.QUEUE).where(q.QUEUE.c.path == path).values(state="done"))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(q.QUEUE).values(path="/x", size_bytes=1, mtime_ns=1, state="bogus"))


def test_requeue_stale(engine: Engine) -> None:
    q.register_files(engine, records(3))
    claimed = q.claim(engine, limit=3, worker="w")
    with engine.begin() as conn:
        conn.execute(
            update(q.QUEUE)
            .where(q.QUEUE.c.id == claimed[0].id)
            .values(claimed_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
        )
    assert q.requeue_stale(engine, dt.timedelta(hours=2)) == 1
    with engine.connect() as conn:
        states = dict(conn.execute(select(q.QUEUE.c.id, q.QUEUE.c.state)).all())
    assert states == {
        claimed[0].id: "pending",
        claimed[1].id: "in_progress",
        claimed[2].id: "in_progress",
    }
    again = q.claim(engine, limit=5, worker="w2")
    assert [r.id for r in again] == [claimed[0].id] and again[0].attempts == 2


def test_concurrent_claimers_never_share_a_row(engine: Engine) -> None:
    total = 300
    q.register_files(engine, records(total))
    barrier = threading.Barrier(3)
    taken: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    errors: list[BaseException] = []

    def work(worker: str) -> None:
        try:
            barrier.wait(timeout=30)
            while True:
                rows = q.claim(engine, limit=7, worker=worker)
                if not rows:
                    return
                assert len(rows) <= 7 and all(r.claimed_by == worker for r in rows)
                taken[worker].extend(r.id for r in rows)
        except BaseException as exc:  # noqa: BLE001 - recorded and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    all_ids = [i for ids in taken.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == total
    assert q.counts(engine)["in_progress"] == total


def test_queue_summary_stuck_failed_and_retry(url_for) -> None:  # type: ignore[no-untyped-def]
    engine = migrated("ingest", url_for("ingest"))
    day = dt.date(2025, 10, 5)
    q.register_files(engine, [q.FileRecord(f"/in/{i}.fits", 10, i, day) for i in range(6)])
    claimed = q.claim(engine, limit=4, worker="w1")
    q.mark_failed(engine, claimed[0].path, "NotFITSError", "no SIMPLE card\nmore")
    q.mark_completed(engine, claimed[1].path)
    with engine.connect() as conn:
        s = q.summary(conn, stuck_after=dt.timedelta(hours=1))
        assert s.counts == {
            "pending": 2,
            "in_progress": 2,
            "completed": 1,
            "failed": 1,
            "missing": 0,
        }
        assert s.stuck == []  # claimed just now: not stuck under a 1 h limit
        assert s.oldest_pending is not None and s.oldest_pending.path == "/in/4.fits"
        assert [r.path for r in s.failed] == [claimed[0].path]
        stuck = q.stuck_rows(conn, dt.timedelta(0))
        assert sorted(r.path for r in stuck) == sorted(r.path for r in claimed[2:])
        with pytest.raises(InvalidQueryError):
            q.stuck_rows(conn, dt.timedelta(minutes=-1))
    # what the listing calls stuck is exactly what requeue_stale takes back
    assert q.requeue_stale(engine, dt.timedelta(0)) == len(stuck)
    assert q.retry_failed(engine) == 1
    row = q.history(engine, claimed[0].path)
    assert row is not None and row.state == "pending" and row.attempts == 1
    assert q.history(engine, "/nope") is None
    engine.dispose()


def _fail(engine: Engine, path: str, error_class: str, message: str) -> None:
    q.transition(engine, path, "pending", "in_progress")
    q.mark_failed(engine, path, error_class, message)


def test_failed_without_date_lists_only_undated_failures(engine: Engine) -> None:
    q.register_files(
        engine,
        [
            q.FileRecord("/in/a/notfits.fits", 1, 1),
            q.FileRecord("/in/a/nodate.fits", 1, 2),
            q.FileRecord("/in/a/dated_bad.fits", 1, 3, DAY1),
            q.FileRecord("/in/a/undated_pending.fits", 1, 4),
        ],
    )
    _fail(engine, "/in/a/notfits.fits", "NotFITSError", "/in/a/notfits.fits: no SIMPLE card")
    _fail(engine, "/in/a/dated_bad.fits", "BadHeaderError", "/in/a/dated_bad.fits: bad NAXIS")
    _fail(
        engine,
        "/in/a/nodate.fits",
        "MissingObservationDateError",
        "/in/a/nodate.fits: the header has no observation time\nHint: fix the header.",
    )
    rows = q.failed_without_date(engine)
    assert {r.path for r in rows} == {"/in/a/notfits.fits", "/in/a/nodate.fits"}
    assert all(r.state == "failed" and r.obs_date is None for r in rows)
    by_name = {r.name: r for r in rows}
    assert by_name["nodate.fits"].error_class == "MissingObservationDateError"
    # One line, without the path the listing already shows.
    assert by_name["nodate.fits"].short_error() == (
        "the header has no observation time Hint: fix the header."
    )
    assert len(q.failed_without_date(engine, limit=1)) == 1
    with engine.connect() as conn:  # inside a caller's transaction too
        assert len(q.failed_without_date(conn)) == 2
