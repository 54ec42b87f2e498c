"""The pooled database resource on real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError

from resources import engines
from resources.dagster_resources import Database
from resources.database import Databases, ObservedQueuePool
from resources.errors import (
    ConfigurationError,
    ContimgError,
    DatabaseConnectionError,
    DatabaseConnectionLostError,
    PoolExhaustedError,
)
from resources.settings import DATABASE_NAMES, PoolSettings, default_database_url
from tests.fixtures_pipeline import migrated_sqlite
from tests.services import pg_execute_admin


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    """Engines are cached per process; close this test's pools before its database is dropped."""
    yield
    engines.dispose_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    if request.param == "sqlite":
        return default_database_url("products", data_dir)
    return request.getfixturevalue("pg_url")


def sample(metric: str, database: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(metric, {"database": database, **labels})
    return 0.0 if value is None else value


def backend_pid(conn: object) -> object:
    return conn.connection.dbapi_connection  # type: ignore[attr-defined]


# --- configuration ----------------------------------------------------------------------------


def test_defaults_are_one_sqlite_file_per_database(data_dir: Path) -> None:
    db = Databases()
    for name in DATABASE_NAMES:
        assert db.url(name) == f"sqlite:///{data_dir / f'{name}.sqlite3'}"
        with db.begin(name) as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() > 0
    assert db.settings == PoolSettings()
    assert isinstance(db.engine("products").pool, ObservedQueuePool)


def test_env_overrides_and_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTIMG_DB_HDF5_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("CONTIMG_DB_POOL_SIZE", "3")
    monkeypatch.setenv("CONTIMG_DB_POOL_PRE_PING", "0")
    db = Databases()
    assert db.url("hdf5").endswith("elsewhere.db")
    assert db.settings.pool_size == 3 and db.settings.pool_pre_ping is False
    assert db.pool_status("hdf5").size == 3
    with pytest.raises(ConfigurationError, match="postgresql\\+psycopg"):
        Databases({"products": "postgresql://u@localhost/x"})
    with pytest.raises(ConfigurationError, match="unknown database 'nope'"):
        Databases({"nope": "sqlite://"})
    with pytest.raises(ConfigurationError, match="unknown database"):
        db.engine("nope")


def test_password_is_inserted_only_where_a_user_has_none() -> None:
    db = Databases(
        {
            "products": "postgresql+psycopg://alice@db.example/p",
            "hdf5": "postgresql+psycopg://bob:own@db.example/h",
        },
        password="pa:ss/word",
    )
    assert db.url("products") == "postgresql+psycopg://alice:pa%3Ass%2Fword@db.example/p"
    assert db.url("hdf5") == "postgresql+psycopg://bob:own@db.example/h"
    assert db.masked_url("products") == "postgresql+psycopg://alice:***@db.example/p"
    assert db.url("ingest").startswith("sqlite:///")  # no user: nothing inserted


def test_same_url_for_two_names_gives_two_pools(data_dir: Path) -> None:
    shared = f"sqlite:///{data_dir / 'shared.db'}"
    db = Databases({"products": shared, "ingest": shared})
    assert db.engine("products") is not db.engine("ingest")
    assert db.engine("products") is Databases({"products": shared}).engine("products")


# --- exhaustion -------------------------------------------------------------------------------


def test_pool_exhaustion_raises_counts_and_recovers(url: str) -> None:
    name, threads_n, timeout = "products", 8, 0.3
    db = Databases(
        {name: url}, settings=PoolSettings(pool_size=2, max_overflow=0, pool_timeout=timeout)
    )
    exhausted_before = sample("contimg_db_pool_exhausted_total", name)
    status_before = db.pool_status(name)
    waits_before = sample("contimg_db_pool_wait_seconds_count", name)
    wait_sum_before = sample("contimg_db_pool_wait_seconds_sum", name)

    start = threading.Barrier(threads_n)
    attempted = threading.Semaphore(0)
    release = threading.Event()
    outcomes: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        try:
            with db.connect(name) as conn:
                conn.execute(text("SELECT 1")).scalar_one()
                with lock:
                    outcomes.append("held")
                attempted.release()
                release.wait(30)
        except (PoolExhaustedError, SQLAlchemyError, ContimgError) as exc:
            with lock:
                outcomes.append(exc)
            attempted.release()

    workers = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in workers:
        t.start()
    try:
        for _ in range(threads_n):
            assert attempted.acquire(timeout=30), "a worker hung instead of failing fast"
        during = db.pool_status(name)
        checked_out_gauge = sample("contimg_db_pool_checked_out", name)
    finally:
        release.set()
        for t in workers:
            t.join(30)

    errors = [o for o in outcomes if o != "held"]
    assert outcomes.count("held") == 2
    assert len(errors) == threads_n - 2
    assert all(type(e) is PoolExhaustedError for e in errors), errors
    first = errors[0]
    assert isinstance(first, PoolExhaustedError)
    assert first.database == name and "checked_out=2" in str(first) and "size=2" in str(first)
    assert during.checked_out == 2 and during.size == 2
    assert checked_out_gauge == 2

    assert sample("contimg_db_pool_exhausted_total", name) - exhausted_before == len(errors)
    after = db.pool_status(name)
    assert after.exhausted_total - status_before.exhausted_total == len(errors)
    # every attempt was timed; the failed ones each waited at least pool_timeout
    assert sample("contimg_db_pool_wait_seconds_count", name) - waits_before == threads_n
    assert sample("contimg_db_pool_wait_seconds_sum", name) - wait_sum_before >= len(errors) * (
        timeout * 0.95
    )

    # the pool serves normally afterwards, at full size
    with db.connect(name) as a, db.connect(name) as b:
        assert a.execute(text("SELECT 1")).scalar_one() == 1
        assert b.execute(text("SELECT 2")).scalar_one() == 2
    final = db.pool_status(name)
    assert (final.checked_out, final.checked_in) == (0, 2)
    assert sample("contimg_db_pool_checked_out", name) == 0


# --- recovery and recycling -------------------------------------------------------------------


def _pid(db: Databases) -> int:
    with db.connect("products") as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.postgres
def test_killed_backend_with_pre_ping_is_replaced_silently(pg_url: str) -> None:
    db = Databases({"products": pg_url}, settings=PoolSettings(pool_size=1, max_overflow=0))
    pid = _pid(db)
    errors_before = db.pool_status("products").connection_errors_total
    pg_execute_admin(f"SELECT pg_terminate_backend({pid}, 5000)")  # waits until it is gone
    assert _pid(db) != pid
    assert db.pool_status("products").connection_errors_total == errors_before


@pytest.mark.postgres
def test_killed_backend_without_pre_ping_fails_once_then_recovers(pg_url: str) -> None:
    db = Databases(
        {"products": pg_url},
        settings=PoolSettings(pool_size=1, max_overflow=0, pool_pre_ping=False),
    )
    pid = _pid(db)
    before = sample("contimg_db_connection_errors_total", "products")
    status_before = db.pool_status("products").connection_errors_total
    pg_execute_admin(f"SELECT pg_terminate_backend({pid}, 5000)")
    with pytest.raises(DatabaseConnectionError) as info, db.connect("products") as conn:
        conn.execute(text("SELECT 1"))
    assert info.value.database == "products"
    assert isinstance(info.value, DatabaseConnectionLostError)
    assert "lost the connection" in str(info.value) and "re-run" in str(info.value)
    assert sample("contimg_db_connection_errors_total", "products") - before == 1
    assert db.pool_status("products").connection_errors_total - status_before == 1
    assert _pid(db) != pid  # the next attempt recovers on a new connection


def test_connections_older_than_pool_recycle_are_replaced(url: str) -> None:
    db = Databases(
        {"products": url}, settings=PoolSettings(pool_size=1, max_overflow=0, pool_recycle=60)
    )
    engine = db.engine("products")
    connects: list[object] = []
    event.listen(engine, "connect", lambda _dbapi, record: connects.append(record))

    with db.connect("products") as conn:
        first = backend_pid(conn)
    with db.connect("products") as conn:
        assert backend_pid(conn) is first  # young: reused
    assert len(connects) == 1
    # Age the record instead of waiting 60 s: the pool compares time.time() - starttime.
    connects[0].starttime -= 61  # type: ignore[attr-defined]
    with db.connect("products") as conn:
        assert backend_pid(conn) is not first
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert len(connects) == 2


# --- metrics ----------------------------------------------------------------------------------


def test_metric_names_and_labels_are_as_documented(data_dir: Path) -> None:
    db = Databases(settings=PoolSettings(pool_size=4, max_overflow=3))
    with db.connect("cal_registry") as conn:
        conn.execute(text("SELECT 1"))
        assert sample("contimg_db_pool_checked_out", "cal_registry") == 1
    db.health("cal_registry")
    expected = {
        "contimg_db_pool_checked_out": "gauge",
        "contimg_db_pool_size": "gauge",
        "contimg_db_pool_overflow": "gauge",
        "contimg_db_pool_wait_seconds": "histogram",
        "contimg_db_pool_exhausted": "counter",
        "contimg_db_connection_errors": "counter",
        "contimg_db_up": "gauge",
        "contimg_db_schema_at_head": "gauge",
    }
    found = {m.name: m for m in REGISTRY.collect() if m.name in expected}
    assert {n: m.type for n, m in found.items()} == expected
    for metric in found.values():
        for s in metric.samples:
            assert set(s.labels) - {"le"} == {"database"}, (metric.name, s.labels)
    assert sample("contimg_db_pool_size", "cal_registry") == 4
    assert sample("contimg_db_pool_max_overflow", "cal_registry") == 3
    assert sample("contimg_db_pool_checked_out", "cal_registry") == 0
    assert sample("contimg_db_pool_overflow", "cal_registry") == 0
    assert sample("contimg_db_up", "cal_registry") == 1
    assert sample("contimg_db_pool_wait_seconds_count", "cal_registry") >= 2
    assert sample("contimg_db_pool_wait_seconds_bucket", "cal_registry", le="+Inf") >= 2


# --- secrets ----------------------------------------------------------------------------------


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_clean(secret: str, *texts: str) -> None:
    for t in texts:
        assert secret not in t


def test_password_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"pw-{uuid.uuid4().hex}"
    db = Databases(
        {"products": f"postgresql+psycopg://alice@127.0.0.1:{_closed_port()}/x"},
        password=secret,
        settings=PoolSettings(connect_timeout=2),
    )
    assert secret in db.url("products")
    with pytest.raises(DatabaseConnectionError) as info, db.connect("products"):
        pass
    exc = info.value
    _assert_clean(
        secret,
        str(exc),
        repr(exc),
        "".join(traceback.format_exception(exc)),
        caplog.text,
        db.masked_url("products"),
        str(db.health("products").to_dict()),
    )
    assert "alice:***@127.0.0.1" in str(exc)
    assert db.pool_status("products").connection_errors_total >= 2


@pytest.mark.postgres
def test_password_role_on_real_server(
    pg_url: str, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    role, secret = f"contimg_r_{uuid.uuid4().hex[:8]}", f"S3-{uuid.uuid4().hex}"
    pg_execute_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'")
    try:
        good = f"postgresql+psycopg://{role}:{secret}@127.0.0.1:5432/{pg_database}"
        bad = f"postgresql+psycopg://{role}:{secret}@127.0.0.1:5432/{pg_database}_missing"
        db = Databases(
            {"products": good, "hdf5": bad},
            settings=PoolSettings(pool_size=1, max_overflow=0, pool_timeout=0.2),
        )
        with db.connect("products") as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == role
            with pytest.raises(PoolExhaustedError) as exhausted, db.connect("products"):
                pass
        with pytest.raises(DatabaseConnectionError) as failed, db.connect("hdf5"):
            pass
        results = db.health_all(timeout=5)
        assert results["products"].ok and not results["hdf5"].ok
        _assert_clean(
            secret,
            caplog.text,
            str(exhausted.value),
            "".join(traceback.format_exception(failed.value)),
            str([r.to_dict() for r in results.values()]),
        )
        assert "does not exist" in str(failed.value)
    finally:
        engines.dispose_all()
        pg_execute_admin(f"DROP ROLE IF EXISTS {role}")


# --- async ------------------------------------------------------------------------------------


def test_async_engine_and_session(url: str) -> None:
    db = Databases({"products": url})
    waits_before = sample("contimg_db_pool_wait_seconds_count", "products")

    async def work() -> tuple[int, int]:
        async with db.async_engine("products") as engine:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
                await conn.execute(text("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')"))
            async with engine.connect() as conn:
                count = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
        async with db.async_session("products") as session:
            v = (await session.execute(text("SELECT count(*) FROM t WHERE v = 'b'"))).scalar_one()
        return int(count), int(v)

    assert asyncio.run(work()) == (2, 1)
    # the sync engine sees the same data (same database, other pool)
    with db.connect("products") as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 2
    assert sample("contimg_db_pool_wait_seconds_count", "products") - waits_before >= 3


def test_async_sqlite_gets_the_pragmas(data_dir: Path) -> None:
    db = Databases()

    async def pragmas() -> tuple[int, str]:
        async with db.async_engine("ingest") as engine, engine.connect() as conn:
            fk = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
            jm = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
        return int(fk), str(jm)

    assert asyncio.run(pragmas()) == (1, "wal")


# --- the Dagster resource ---------------------------------------------------------------------


def test_dagster_resource_in_a_real_run(data_dir: Path) -> None:
    migrated_sqlite(data_dir)  # the resource refuses databases that are not at head

    @dg.asset
    def touched(database: dg.ResourceParam[Databases]) -> int:
        # The resource hands the asset the plain object: one way to reach a database.
        assert type(database) is Databases
        with database.begin("products") as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS marks (id INTEGER PRIMARY KEY)"))
            conn.execute(text("INSERT INTO marks DEFAULT VALUES"))
        assert database.pool_status("products").size == 3
        assert database.health("products").ok
        return 1

    result = dg.materialize([touched], resources={"database": Database(pool_size=3)})
    assert result.success
    with Databases().connect("products") as conn:
        assert conn.execute(text("SELECT count(*) FROM marks")).scalar_one() == 1


def test_resource_reads_password_at_run_time_and_unset_envvar_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTIMG_DB_PASSWORD", "from-env")
    resource = Database(products_url="postgresql+psycopg://carol@db.example/p").build()
    assert resource.url("products") == "postgresql+psycopg://carol:from-env@db.example/p"
    assert resource.masked_url("products") == "postgresql+psycopg://carol:***@db.example/p"

    # Dagster 1.13 fails resource initialisation when an EnvVar's variable is unset: this is
    # why the default setup leaves `password` unset instead of wiring the EnvVar.
    monkeypatch.delenv("CONTIMG_DB_PASSWORD")

    @dg.asset
    def needs_db(database: dg.ResourceParam[Databases]) -> None:
        database.url("products")

    with pytest.raises(dg.DagsterInvalidConfigError, match="CONTIMG_DB_PASSWORD"):
        dg.materialize(
            [needs_db],
            resources={"database": Database(password=dg.EnvVar("CONTIMG_DB_PASSWORD"))},
        )
