"""Health checks: concurrent, each under its own timeout, typed results, extra probes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from resources import engines
from resources.database import Databases, HealthResult
from resources.settings import DATABASE_NAMES, PoolSettings
from tests.resources.listeners import silent_listener

SECRET = "hung-secret-pw"


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


@pytest.fixture
def hung_port() -> Iterator[int]:
    with silent_listener() as port:
        yield port


def test_hung_database_does_not_stall_the_others(data_dir: Path, hung_port: int) -> None:
    timeout = 0.5
    db = Databases(
        {"hdf5": f"postgresql+psycopg://u:{SECRET}@127.0.0.1:{hung_port}/x"},
        settings=PoolSettings(health_timeout=timeout, connect_timeout=2),
    )
    started = time.perf_counter()
    results = db.health_all()
    elapsed = time.perf_counter() - started

    assert elapsed < timeout + 1.0, elapsed
    assert list(results) == list(DATABASE_NAMES)
    hung = results["hdf5"]
    assert isinstance(hung, HealthResult)
    assert not hung.ok and hung.error_class == "TimeoutError" and hung.latency_s is None
    assert "0.5 s" in (hung.error_message or "")
    assert SECRET not in str(hung.to_dict()) and ":***@" in hung.masked_url
    for name in DATABASE_NAMES:
        if name != "hdf5":
            assert results[name].ok, results[name]
            assert results[name].latency_s is not None and results[name].latency_s < timeout
            assert results[name].pool.database == name
    assert REGISTRY.get_sample_value("contimg_db_up", {"database": "hdf5"}) == 0
    assert REGISTRY.get_sample_value("contimg_db_up", {"database": "products"}) == 1


def test_each_database_has_its_own_budget_not_a_shared_one(data_dir: Path, hung_port: int) -> None:
    # Two hung databases probed concurrently cost one timeout, not two.
    timeout = 0.4
    hung = f"postgresql+psycopg://u@127.0.0.1:{hung_port}/x"
    db = Databases(
        {"hdf5": hung, "ingest": hung},
        settings=PoolSettings(health_timeout=timeout, connect_timeout=2),
    )
    started = time.perf_counter()
    results = db.health_all()
    elapsed = time.perf_counter() - started
    assert elapsed < 2 * timeout, elapsed
    assert [n for n, r in results.items() if not r.ok] == ["hdf5", "ingest"]


def test_extra_probe_runs_under_the_same_timeout(data_dir: Path) -> None:
    block = threading.Event()

    def probe(name: str, conn: Connection) -> dict[str, object]:
        if name == "ingest":
            block.wait(10)  # a probe that hangs (e.g. a locked version table)
        if name == "hdf5":
            raise OperationalError("SELECT revision", {}, Exception("no version table"))
        return {"answer": conn.execute(text("SELECT 42")).scalar_one(), "db": name}

    db = Databases(settings=PoolSettings(health_timeout=0.5))
    started = time.perf_counter()
    try:
        results = db.health_all(probe=probe)
    finally:
        block.set()
    assert time.perf_counter() - started < 1.5
    assert results["products"].ok and results["products"].extra == {"answer": 42, "db": "products"}
    assert not results["ingest"].ok and results["ingest"].error_class == "TimeoutError"
    # a failing probe is reported, but the database itself answered
    assert results["hdf5"].ok and "no version table" in (results["hdf5"].probe_error or "")


def test_unreachable_database_is_reported_not_raised(data_dir: Path) -> None:
    # a directory where the database file should be: SQLite cannot open it
    (data_dir / "blocked.db").mkdir()
    db = Databases({"products": f"sqlite:///{data_dir / 'blocked.db'}"})
    result = db.health("products", timeout=2)
    assert not result.ok
    assert result.error_class == "DatabaseConnectionError"
    assert result.pool.connection_errors_total >= 1


@pytest.mark.postgres
def test_health_on_postgres(pg_url: str) -> None:
    db = Databases({"products": pg_url})
    result = db.health(
        "products", probe=lambda _n, c: {"v": c.execute(text("SHOW server_version")).scalar_one()}
    )
    assert result.ok and result.latency_s is not None
    assert str(result.extra["v"]).startswith(("1", "2"))
