"""migrate_databases, rollback_database and database_status, executed in process on real databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from migrations import runner
from pipeline_defs.jobs.database import (
    confirmation_phrase,
    database_status,
    migrate_databases,
    rollback_database,
)
from pipeline_defs.monitoring.health import STATUS_COLUMNS
from resources import engines
from resources.dagster_resources import Database
from resources.settings import DATABASE_NAMES
from tests.pipeline_defs.sensors.support import migrate_all, sqlite_urls


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


def _resource(urls: dict[str, str]) -> Database:
    return Database(**{f"{name}_url": url for name, url in urls.items()})


def _run(job: dg.JobDefinition, urls: dict[str, str], run_config: dict[str, Any] | None = None):
    return job.execute_in_process(
        resources={"database": _resource(urls)},
        run_config=run_config or {},
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )


def _output_metadata(result: dg.ExecuteInProcessResult, step: str) -> dict[str, Any]:
    events = [
        e
        for e in result.all_node_events
        if e.step_key == step and e.event_type_value == "STEP_OUTPUT"
    ]
    assert len(events) == 1, [e.event_type_value for e in result.all_node_events]
    return {k: v.value for k, v in events[0].event_specific_data.metadata.items()}


def _failure_message(result: dg.ExecuteInProcessResult, step: str) -> str:
    failures = [e for e in result.get_step_failure_events() if e.step_key == step]
    assert len(failures) == 1, [e.step_key for e in result.get_step_failure_events()]
    error = failures[0].event_specific_data.error
    return error.message


def _rollback_config(**config: Any) -> dict[str, Any]:
    return {"ops": {"rollback_database_op": {"config": config}}}


def test_every_op_holds_the_database_pool_and_one_op_per_database() -> None:
    assert sorted(n.name for n in migrate_databases.nodes) == sorted(
        f"migrate_{name}" for name in DATABASE_NAMES
    )
    for job in (migrate_databases, rollback_database, database_status):
        assert {n.definition.pool for n in job.nodes} == {"database"}
        assert all("database" in n.definition.required_resource_keys for n in job.nodes)


def test_migrate_databases_brings_fresh_databases_to_head(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    result = _run(migrate_databases, urls)

    assert result.success
    for name, url in urls.items():
        state = runner.status(name, url)
        assert state.at_head and state.current == runner.head_revision(name)
        meta = _output_metadata(result, f"migrate_{name}")
        assert meta["before"] == "base" and meta["after"] == state.current
        assert meta["applied"] == [r.revision for r in runner.history(name)]
        assert meta["duration_s"] > 0 and meta["dry_run"] is False
        assert meta["backup_path"] == "none"  # nothing to back up in a database that did not exist

    again = _run(migrate_databases, urls)  # at head: a no-op that still succeeds
    assert again.success
    meta = _output_metadata(again, "migrate_products")
    assert meta["applied"] == [] and "nothing to do" in meta["message"]


def test_migrate_takes_a_backup_of_an_existing_sqlite_file(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"products": "products_0001"})
    result = _run(migrate_databases, urls, {"databases": ["products"]})
    assert result.success
    meta = _output_metadata(result, "migrate_products")
    assert meta["before"] == "products_0001" and meta["applied"] == [
        "products_0002",
        "products_0003",
        "products_0004",
        "products_0005",
    ]
    assert Path(meta["backup_path"]).is_file()
    assert Path(meta["backup_path"]).name.startswith("products.sqlite3.bak-")


def test_dry_run_reports_the_plan_and_changes_nothing(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"products": "products_0001"})
    result = _run(migrate_databases, urls, {"dry_run": True})

    assert result.success
    meta = _output_metadata(result, "migrate_products")
    assert meta["dry_run"] is True and meta["applied"] == [
        "products_0002",
        "products_0003",
        "products_0004",
        "products_0005",
    ]
    assert "would upgrade products_0001 -> products_0005" in meta["message"]
    assert "sql" in meta and "products_0002" in meta["sql"]
    assert runner.status("products", urls["products"]).current == "products_0001"
    assert _output_metadata(result, "migrate_ingest")["applied"] == []


def test_targets_and_database_selection(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    result = _run(
        migrate_databases,
        urls,
        {"databases": ["products", "ingest"], "targets": {"products": "products_0001"}},
    )
    assert result.success
    assert runner.status("products", urls["products"]).current == "products_0001"
    assert runner.status("ingest", urls["ingest"]).at_head
    assert runner.status("hdf5", urls["hdf5"]).current is None
    assert _output_metadata(result, "migrate_hdf5") == {"database": "hdf5", "skipped": True}


def test_one_broken_database_fails_its_own_op_only(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"hdf5": "base"})
    (data_dir / "hdf5.sqlite3").mkdir()  # the file cannot be opened, even by root

    result = _run(migrate_databases, urls)
    assert not result.success
    failed = {e.step_key for e in result.get_step_failure_events()}
    assert failed == {"migrate_hdf5"}
    message = _failure_message(result, "migrate_hdf5")
    assert "upgrade of database 'hdf5' failed: database 'hdf5': cannot connect to" in message
    assert "hdf5.sqlite3: unable to open database file" in message
    for name in DATABASE_NAMES:
        if name != "hdf5":
            assert runner.status(name, urls[name]).at_head


def test_rollback_without_confirmation_refuses(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    result = _run(
        rollback_database,
        urls,
        _rollback_config(database="products", target="products_0001"),
    )
    assert not result.success
    message = _failure_message(result, "rollback_database_op")
    assert "Refusing to roll back 'products' to 'products_0001' without confirmation" in message
    assert 'confirm: "rollback products to products_0001"' in message
    assert runner.status("products", urls["products"]).current == "products_0005"

    wrong = _run(
        rollback_database,
        urls,
        _rollback_config(
            database="products", target="products_0001", confirm="rollback ingest to x"
        ),
    )
    assert not wrong.success
    assert "got 'rollback ingest to x'" in _failure_message(wrong, "rollback_database_op")
    assert runner.status("products", urls["products"]).current == "products_0005"


def test_rollback_with_confirmation_goes_to_the_revision(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    result = _run(
        rollback_database,
        urls,
        _rollback_config(
            database="products",
            target="products_0001",
            confirm=confirmation_phrase("products", "products_0001"),
        ),
    )
    assert result.success
    assert runner.status("products", urls["products"]).current == "products_0001"
    meta = _output_metadata(result, "rollback_database_op")
    assert meta["direction"] == "downgrade"
    assert meta["applied"] == ["products_0005", "products_0004", "products_0003", "products_0002"]
    assert meta["before"] == "products_0005" and meta["after"] == "products_0001"
    assert Path(meta["backup_path"]).is_file()


def test_rollback_dry_run_needs_no_confirmation_and_changes_nothing(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    result = _run(
        rollback_database,
        urls,
        _rollback_config(database="ingest", target="ingest_0001", dry_run=True),
    )
    assert result.success
    assert _output_metadata(result, "rollback_database_op")["applied"] == [
        "ingest_0003",
        "ingest_0002",
    ]
    assert runner.status("ingest", urls["ingest"]).at_head


def test_rollback_to_an_unknown_revision_fails_with_the_runner_message(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    target = "nonexistent"
    result = _run(
        rollback_database,
        urls,
        _rollback_config(
            database="products", target=target, confirm=confirmation_phrase("products", target)
        ),
    )
    assert not result.success
    message = _failure_message(result, "rollback_database_op")
    assert "rollback of database 'products' failed" in message
    assert "unknown or ambiguous revision 'nonexistent'" in message


def test_database_status_reports_a_table(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    migrate_all(urls, {"products": "products_0001"})
    (data_dir / "hdf5.sqlite3").unlink()
    (data_dir / "hdf5.sqlite3").mkdir()

    instance = dg.DagsterInstance.ephemeral()
    result = database_status.execute_in_process(
        resources={"database": _resource(urls)}, raise_on_error=False, instance=instance
    )
    assert result.success
    events = [e for e in result.all_node_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = events[0].event_specific_data.metadata
    table = metadata["databases"]
    assert isinstance(table, dg.TableMetadataValue)
    # Few, short columns: the table has to read in the UI without scrolling sideways.
    assert [c.name for c in table.schema.columns] == [c[0] for c in STATUS_COLUMNS]
    assert len(STATUS_COLUMNS) <= 7
    rows = {r.data["database"]: r.data for r in table.records}
    assert list(rows) == list(DATABASE_NAMES)
    assert rows["products"] == {
        "database": "products",
        "state": "behind",
        "latency_ms": rows["products"]["latency_ms"],
        "revision": "products_0001",
        "pending": 4,
        "pool": "0/5+0",
    }
    assert rows["products"]["latency_ms"] > 0
    assert rows["hdf5"]["state"] == "DOWN" and rows["hdf5"]["revision"] == "?"
    assert rows["ingest"]["state"] == "ok" and rows["ingest"]["pending"] == 0
    assert all(len(str(v)) <= 20 for row in rows.values() for v in row.values())
    problems = metadata["problems"].value
    assert "- **hdf5**: DatabaseConnectionError: " in problems
    assert (
        "- **products**: pending products_0002, products_0003, products_0004, products_0005"
        in problems
    )
    details = {d["database"]: d for d in metadata["details"].value}
    assert details["products"]["url"] == urls["products"] and details["hdf5"]["cause"]
    assert metadata["unhealthy"].value == 1 and metadata["pending_revisions"].value == 4
    messages = [
        e.user_message for e in instance.all_logs(result.run_id) if e.step_key and e.level >= 30
    ]
    expected = (
        "4 of 5 databases healthy; UNHEALTHY: hdf5; behind head: products "
        "(details in the run's metadata)"
    )
    assert messages == [expected]


@pytest.mark.postgres
def test_migrate_and_rollback_on_postgres(data_dir: Path, pg_url: str) -> None:
    urls = sqlite_urls(data_dir)
    urls["products"] = pg_url
    assert _run(migrate_databases, urls).success
    assert runner.status("products", pg_url).at_head
    result = _run(
        rollback_database,
        urls,
        _rollback_config(
            database="products",
            target="products_0001",
            confirm=confirmation_phrase("products", "products_0001"),
        ),
    )
    assert result.success
    assert runner.status("products", pg_url).current == "products_0001"
    assert _output_metadata(result, "rollback_database_op")["backup_path"] == "none"
