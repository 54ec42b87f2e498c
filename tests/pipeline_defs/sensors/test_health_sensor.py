"""database_health_sensor against real databases: summaries, transitions, auto-migrate, hangs."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from prometheus_client import REGISTRY

from migrations import runner
from pipeline_defs.jobs.database import migrate_databases
from pipeline_defs.monitoring.health import MonitorState
from pipeline_defs.sensors.health import (
    AUTO_MIGRATE_ENV,
    INTERVAL_ENV,
    build_database_health_sensor,
    database_health_sensor,
)
from resources import engines
from resources.dagster_resources import Database
from resources.errors import ConfigurationError
from resources.settings import DATABASE_NAMES
from tests.pipeline_defs.sensors.support import ListHandler, migrate_all, sqlite_urls
from tests.resources.listeners import silent_listener
from tests.services import PG_HOST, PG_PORT, PG_USER, pg_execute_admin


@pytest.fixture(autouse=True)
def _fresh_engine_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(AUTO_MIGRATE_ENV, raising=False)
    yield
    engines.dispose_all()


def _resource(urls: dict[str, str], **kwargs: object) -> Database:
    return Database(**{f"{name}_url": url for name, url in urls.items()}, **kwargs)


def tick(database: Database, cursor: str | None = None) -> tuple[dg.SensorResult, ListHandler]:
    """One evaluation as the daemon does it: fresh context, previous cursor, the resource."""
    handler = ListHandler()
    with dg.build_sensor_context(
        cursor=cursor, resources={"database": database}, instance=dg.DagsterInstance.ephemeral()
    ) as context:
        context.log.addHandler(handler)
        result = database_health_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result, handler


def _gauge(name: str, database: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"database": database})


def test_healthy_databases_skip_with_a_summary(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    result, log = tick(_resource(urls))

    assert not result.run_requests
    assert result.skip_reason is not None
    text = result.skip_reason.skip_message or ""
    assert text.startswith("All 5 databases healthy and at head.")
    for name in DATABASE_NAMES:
        assert f"{name}: up " in text
        assert runner.head_revision(name) in text
        assert _gauge("contimg_db_up", name) == 1
        assert _gauge("contimg_db_schema_at_head", name) == 1
    assert log.messages(logging.WARNING) == []
    state = MonitorState.from_cursor(result.cursor)
    assert state.healthy == dict.fromkeys(DATABASE_NAMES, True) and state.pending is None


def test_replaced_sqlite_file_is_reported_once_then_recovery_once(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    database = _resource(urls)
    first, log0 = tick(database)  # healthy; the pool now holds a connection to the file
    assert log0.records == []

    path = data_dir / "products.sqlite3"
    aside = data_dir / "aside"
    aside.mkdir()
    moved = [p for p in data_dir.glob("products.sqlite3*") if p.is_file()]
    for p in moved:
        shutil.move(p, aside / p.name)
    path.mkdir()  # works as root, unlike chmod 000: nothing can open a directory as a database

    second, log1 = tick(database, first.cursor)
    third, log2 = tick(database, second.cursor)

    warnings = log1.messages(logging.WARNING)
    assert len(warnings) == 1, log1.messages()
    assert warnings[0].startswith("database 'products' became unhealthy:")
    assert "products.sqlite3 is a directory" in warnings[0]
    assert log2.records == [], log2.messages()  # still down: not reported again
    for result in (second, third):
        text = result.skip_reason.skip_message or "" if result.skip_reason else ""
        assert "1 of 5 databases UNHEALTHY: products (" in text
        assert not result.run_requests
    assert _gauge("contimg_db_up", "products") == 0
    assert _gauge("contimg_db_schema_at_head", "products") == 0
    assert _gauge("contimg_db_up", "ingest") == 1

    path.rmdir()
    for p in moved:
        shutil.move(aside / p.name, p)
    fourth, log3 = tick(database, third.cursor)
    fifth, log4 = tick(database, fourth.cursor)
    assert log3.messages() == ["database 'products' recovered: reachable and its revision readable"]
    assert log4.records == []
    assert (fifth.skip_reason.skip_message or "").startswith("All 5 databases healthy")
    assert _gauge("contimg_db_up", "products") == 1


def test_database_unopenable_from_the_start_is_reported_on_the_first_tick(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    blocker = data_dir / "not-a-dir"
    blocker.write_bytes(b"a regular file where a directory is expected")
    urls["hdf5"] = f"sqlite:///{blocker / 'hdf5.sqlite3'}"  # its engine cannot even be built

    result, log = tick(_resource(urls))
    warnings = log.messages(logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith("database 'hdf5' is unhealthy:")
    text = result.skip_reason.skip_message if result.skip_reason else ""
    assert "hdf5: DOWN" in (text or "") and "products: up" in (text or "")


@pytest.mark.postgres
def test_postgres_database_dropped_under_the_sensor(
    data_dir: Path, pg_url: str, pg_database: str
) -> None:
    urls = sqlite_urls(data_dir)
    urls["products"] = pg_url
    migrate_all(urls)
    database = _resource(urls, health_timeout=5.0, connect_timeout=2)
    first, _ = tick(database)
    assert (first.skip_reason.skip_message or "").startswith("All 5 databases healthy")

    pg_execute_admin(f'DROP DATABASE "{pg_database}" WITH (FORCE)')
    second, log = tick(database, first.cursor)  # must not raise
    warnings = log.messages(logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith("database 'products' became unhealthy:")
    assert pg_database in warnings[0]  # the cause is the server's own message
    assert "UNHEALTHY: products" in (second.skip_reason.skip_message or "")
    third, log = tick(database, second.cursor)
    assert log.records == [] and not third.run_requests


def test_pending_migration_without_auto_migrate_is_reported_not_run(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"products": "products_0001"})
    result, log = tick(_resource(urls))

    assert not result.run_requests
    text = result.skip_reason.skip_message or "" if result.skip_reason else ""
    assert (
        "Pending migrations: products: products_0002, products_0003, products_0004, products_0005."
        in text
    )
    assert "Auto-migrate is off" in text
    assert log.messages(logging.INFO) == [
        "pending migrations: products: products_0002, products_0003, products_0004, products_0005"
    ]
    assert _gauge("contimg_db_schema_at_head", "products") == 0
    assert _gauge("contimg_db_schema_at_head", "ingest") == 1

    again, log = tick(_resource(urls), result.cursor)
    assert not again.run_requests and log.records == []  # reported in the summary, logged once


def test_auto_migrate_requests_one_run_per_pending_set(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTO_MIGRATE_ENV, "1")
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"products": "products_0001", "ingest": "ingest_0001"})
    database = _resource(urls)

    first, log = tick(database)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.run_key and request.run_key.startswith("auto-migrate-")
    assert request.run_config == {"databases": ["ingest", "products"]}
    assert request.tags["contimg/trigger"] == "database_health_sensor"
    assert any("requesting migrate_databases" in m for m in log.messages(logging.INFO))

    second, _ = tick(database, first.cursor)  # same revisions still pending: no second run
    assert not second.run_requests
    assert "already requested" in (second.skip_reason.skip_message or "")

    # The requested config is valid for the job and does what it says.
    run = migrate_databases.execute_in_process(
        resources={"database": database}, run_config=request.run_config
    )
    assert run.success
    assert all(runner.status(name, url).at_head for name, url in urls.items())
    third, _ = tick(database, second.cursor)
    assert not third.run_requests
    assert (third.skip_reason.skip_message or "").startswith("All 5 databases healthy")


def test_a_new_pending_set_gets_its_own_request(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTO_MIGRATE_ENV, "yes")
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"products": "products_0001"})
    first, _ = tick(_resource(urls))
    runner.downgrade("ingest", urls["ingest"], "ingest_0001", backup=False)
    second, _ = tick(_resource(urls), first.cursor)
    assert len(first.run_requests) == len(second.run_requests) == 1
    assert first.run_requests[0].run_key != second.run_requests[0].run_key


def test_hung_server_keeps_the_tick_within_its_timeout(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    timeout = 0.6
    with silent_listener() as port:
        urls["hdf5"] = f"postgresql+psycopg://u:pw@127.0.0.1:{port}/x"
        database = _resource(urls, health_timeout=timeout, connect_timeout=5)
        started = time.perf_counter()
        result, log = tick(database)
        elapsed = time.perf_counter() - started
    assert elapsed < timeout + 1.5, elapsed
    warnings = log.messages(logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith("database 'hdf5' is unhealthy: Timeout")
    assert "pw" not in json.dumps(result.cursor)


@pytest.mark.postgres
def test_locked_version_table_keeps_the_tick_within_its_timeout(
    data_dir: Path, pg_url: str, pg_database: str
) -> None:
    urls = sqlite_urls(data_dir)
    urls["products"] = pg_url
    migrate_all(urls)
    timeout = 1.0
    database = _resource(urls, health_timeout=timeout)
    first, _ = tick(database)
    assert (first.skip_reason.skip_message or "").startswith("All 5 databases healthy")

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=pg_database) as locker:
        locker.execute("LOCK TABLE alembic_version_products IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        second, log = tick(database, first.cursor)
        elapsed = time.perf_counter() - started
        locker.rollback()
    assert elapsed < timeout + 1.5, elapsed
    warnings = log.messages(logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith("database 'products' became unhealthy")
    assert "products" in (second.skip_reason.skip_message or "")


def test_interval_comes_from_the_environment_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert build_database_health_sensor().minimum_interval_seconds == 60
    monkeypatch.setenv(INTERVAL_ENV, "15")
    sensor = build_database_health_sensor()
    assert sensor.minimum_interval_seconds == 15 and sensor.name == "database_health_sensor"
    assert sensor.job_name == "migrate_databases"
    monkeypatch.setenv(INTERVAL_ENV, "0")
    with pytest.raises(ConfigurationError, match=INTERVAL_ENV):
        build_database_health_sensor()


def test_malformed_settings_do_not_break_the_tick(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"products": "products_0001"})
    monkeypatch.setenv(AUTO_MIGRATE_ENV, "perhaps")
    result, log = tick(_resource(urls), cursor="{not json")
    assert not result.run_requests
    warnings = log.messages(logging.WARNING)
    assert any("unreadable sensor cursor" in w for w in warnings)
    assert any(AUTO_MIGRATE_ENV in w and "treating auto-migrate as off" in w for w in warnings)
    assert MonitorState.from_cursor(result.cursor).unreadable is None
