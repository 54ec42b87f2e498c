"""The production profile: `contimg init-home --profile production` and a Dagster instance whose
run, event-log and schedule storage live in PostgreSQL (dagster-postgres through psycopg2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster_postgres.run_storage import PostgresRunStorage

from pipeline_defs.cli import main
from pipeline_defs.definitions import build_definitions
from pipeline_defs.instance import TEMPLATES
from resources import engines
from tests.fixtures_pipeline import migrated_single_url
from tests.pipeline_defs.scale_support import (
    contimg_pg_env,
    pg_query,
    production_env,
    set_env,
    write_production_home,
)

defs = build_definitions()


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


def test_init_home_production_profile_writes_both_templates(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = isolated_env / "dagster_home"
    # Without DAGSTER_PG_*: the files are written, the storage cannot be opened, and the one-line
    # error names the variable (exit 1).
    for name in production_env("x"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["init-home", "--profile", "production"])
    assert result.exit_code == 1, result.output
    assert "DAGSTER_PG_" in result.output and "Traceback" not in result.output
    assert "run `contimg init-home` again" in result.output
    assert (home / "dagster.yaml").read_text() == (TEMPLATES / "production.yaml").read_text()
    assert (home / "celery_worker.yaml").read_text() == (
        TEMPLATES / "celery_worker.yaml"
    ).read_text()

    assert (home / "dagster.yaml").read_text() == (TEMPLATES / "production.yaml").read_text()


@pytest.mark.postgres
def test_init_home_applies_the_pool_limit_to_the_storage_once(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, pg_database: str
) -> None:
    """Runs that start together on a fresh storage would race to write the pool limit
    (InFailedSqlTransaction on concurrency_limits); init-home writes it before any run."""
    home = isolated_env / "dagster_home"
    storage = pg_database
    set_env(monkeypatch, production_env(storage))
    result = CliRunner().invoke(main, ["init-home", "--profile", "production"])
    assert result.exit_code == 0, result.output
    assert f"DAGSTER_HOME={home}" in result.output
    assert "pool database: limit 4" in result.output
    rows = pg_query(storage, 'SELECT concurrency_key, "limit" FROM concurrency_limits')
    assert rows == [("database", 4)]
    slots = pg_query(storage, "SELECT count(*) FROM concurrency_slots WHERE deleted = false")
    assert slots == [(4,)]

    again = CliRunner().invoke(main, ["init-home", "--profile", "embedded"])
    assert again.exit_code == 0, again.output
    assert "kept the existing" in again.output
    assert (home / "dagster.yaml").read_text() == (TEMPLATES / "production.yaml").read_text()
    assert pg_query(storage, "SELECT count(*) FROM concurrency_limits") == [(1,)]

    # The operator lowers the limit: init-home applies the new one (Dagster's own update path
    # fails on PostgreSQL, see pipeline_defs/instance.py).
    config = home / "dagster.yaml"
    config.write_text(config.read_text().replace("default_limit: 4", "default_limit: 2"))
    lowered = CliRunner().invoke(main, ["init-home"])
    assert lowered.exit_code == 0, lowered.output
    assert "pool database: limit 2" in lowered.output
    assert pg_query(storage, 'SELECT concurrency_key, "limit" FROM concurrency_limits') == [
        ("database", 2)
    ]


def test_init_home_refuses_an_unknown_profile() -> None:
    result = CliRunner().invoke(main, ["init-home", "--profile", "cloud"])
    assert result.exit_code == 2
    assert "'cloud' is not one of 'embedded', 'production'" in result.output


def test_production_instance_names_the_missing_variable(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_production_home(isolated_env / "dagster_home")
    set_env(monkeypatch, production_env("whatever"))
    monkeypatch.delenv("DAGSTER_PG_HOST")
    with pytest.raises(dg.DagsterInvalidConfigError) as excinfo:
        dg.DagsterInstance.get()
    assert 'environment variable "DAGSTER_PG_HOST"' in str(excinfo.value)


@pytest.mark.postgres
def test_production_instance_runs_a_job_and_stores_it_in_postgres(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, pg_database: str, pg_url: str
) -> None:
    write_production_home(isolated_env / "dagster_home")
    set_env(monkeypatch, production_env(pg_database))
    set_env(monkeypatch, contimg_pg_env(pg_url))
    migrated_single_url(pg_url)

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        # The scheme of the template: psycopg2, the driver dagster-postgres ships.
        assert instance.run_storage._engine.url.drivername == "postgresql+psycopg2"
        pools = instance.event_log_storage.get_pool_config()
        assert pools.default_pool_limit == 4
        assert pools.pool_granularity is not None and pools.pool_granularity.value == "op"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        result = defs.resolve_job_def("database_status").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert result.success
        run_id = result.run_id

    rows = pg_query(pg_database, "SELECT status FROM runs WHERE run_id = %s", (run_id,))
    assert rows == [("SUCCESS",)]
    (events,) = pg_query(
        pg_database, "SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,)
    )
    assert events[0] > 5
    # Dagster's schema and ours share the database: each keeps its own version table.
    tables = {r[0] for r in pg_query(pg_database, "SELECT tablename FROM pg_tables")}
    assert {"alembic_version", "runs", "event_logs", "images", "ingest_queue"} <= tables
    assert len([t for t in tables if t.startswith("alembic_version_")]) == 5
