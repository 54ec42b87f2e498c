"""`contimg health`: table, JSON, exit status (behind head and missing files too), masking, hung
databases."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrations import runner
from pipeline_defs.cli import main
from pipeline_defs.cli.health import HealthColumn, make_health_command
from resources import engines
from resources.settings import DATABASE_NAMES
from tests.fixtures_pipeline import migrated_sqlite
from tests.resources.listeners import silent_listener

SECRET = "cli-secret-pw"


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


@pytest.fixture
def migrated(data_dir: Path) -> Path:
    """The default SQLite databases under the data dir, at head: what `health` calls healthy."""
    migrated_sqlite(data_dir)
    return data_dir


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_all_up_table(migrated: Path) -> None:
    data_dir = migrated
    result = CliRunner().invoke(main, ["health"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["DATABASE", "STATUS", "LATENCY"]
    for name in DATABASE_NAMES:
        row = next(line for line in lines if line.startswith(name + " "))
        assert " up " in row and str(data_dir / f"{name}.sqlite3") in row


def test_json_output(migrated: Path) -> None:
    result = CliRunner().invoke(main, ["health", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["ok"] is True
    assert [d["database"] for d in payload["databases"]] == list(DATABASE_NAMES)
    first = payload["databases"][0]
    assert first["latency_s"] > 0 and first["pool"]["size"] == 5
    assert set(first["pool"]) >= {"checked_out", "overflow", "checked_in", "exhausted_total"}


@pytest.mark.parametrize("as_json", [False, True])
def test_unreachable_database_exit_1_and_masked(
    migrated: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    monkeypatch.setenv(
        "CONTIMG_DB_HDF5_URL", f"postgresql+psycopg://op:{SECRET}@127.0.0.1:{_closed_port()}/x"
    )
    result = CliRunner().invoke(main, ["health", "--json"] if as_json else ["health"])
    assert result.exit_code == 1
    assert SECRET not in result.output
    assert "op:***@127.0.0.1" in result.output
    if as_json:
        payload = json.loads(result.output)
        down = {d["database"]: d for d in payload["databases"]}
        assert payload["ok"] is False and down["hdf5"]["ok"] is False
        assert down["hdf5"]["error_class"] == "DatabaseConnectionError"
        assert down["products"]["ok"] is True
    else:
        assert any(
            line.startswith("hdf5 ") and "DOWN" in line for line in result.output.splitlines()
        )
        assert "hdf5: DatabaseConnectionError:" in result.output


def test_password_from_env_never_printed(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_DB_PASSWORD", SECRET)
    monkeypatch.setenv(
        "CONTIMG_DB_INGEST_URL", f"postgresql+psycopg://op@127.0.0.1:{_closed_port()}/x"
    )
    result = CliRunner().invoke(main, ["health", "--json"])
    assert result.exit_code == 1 and SECRET not in result.output


def test_hung_database_returns_within_timeout(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with silent_listener() as port:
        monkeypatch.setenv(
            "CONTIMG_DB_CAL_REGISTRY_URL", f"postgresql+psycopg://op@127.0.0.1:{port}/x"
        )
        monkeypatch.setenv("CONTIMG_DB_HEALTH_TIMEOUT", "0.5")
        monkeypatch.setenv("CONTIMG_DB_CONNECT_TIMEOUT", "2")
        started = time.perf_counter()
        result = CliRunner().invoke(main, ["health"])
        elapsed = time.perf_counter() - started
    assert result.exit_code == 1
    assert elapsed < 1.5, elapsed
    assert "cal_registry: TimeoutError: no answer within 0.5 s" in result.output


def test_bad_configuration_is_a_message_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_DB_PRODUCTS_URL", f"postgresql://op:{SECRET}@h/x")
    result = CliRunner().invoke(main, ["health"])
    assert result.exit_code == 2  # a settings error, as for a usage error
    assert "postgresql+psycopg" in result.output and "Traceback" not in result.output
    assert SECRET not in result.output


def test_extra_probe_and_columns_hook(migrated: Path) -> None:
    command = make_health_command(
        probe=lambda name, _conn: {"revision": f"rev-{name}"},
        columns=[HealthColumn("REVISION", lambda r: str(r.extra.get("revision", "-")))],
    )
    result = CliRunner().invoke(command, [])
    assert result.exit_code == 0, result.output
    assert "REVISION" in result.output.splitlines()[0]
    assert "rev-products" in result.output
    payload = json.loads(CliRunner().invoke(command, ["--json"]).output)
    assert payload["databases"][1]["extra"] == {"revision": "rev-cal_registry"}


@pytest.mark.postgres
def test_postgres_database_in_the_table(
    migrated: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.upgrade("products", pg_url, backup=False)
    monkeypatch.setenv("CONTIMG_DB_PRODUCTS_URL", pg_url)
    result = CliRunner().invoke(main, ["health"])
    assert result.exit_code == 0, result.output
    assert pg_url in result.output  # trust auth: no password to mask


def test_default_command_reports_revision_vs_head(data_dir: Path) -> None:
    from prometheus_client import REGISTRY

    for name in DATABASE_NAMES:  # reachable files without a schema: up, but behind head
        sqlite3.connect(data_dir / f"{name}.sqlite3").execute(
            "CREATE TABLE t (x)"
        ).connection.close()
    cli = CliRunner()
    behind = cli.invoke(main, ["health", "--json"])
    assert behind.exit_code == 1, behind.output
    products = json.loads(behind.output)["databases"][0]
    assert products["ok"] is True
    assert products["extra"]["revision"] is None and products["extra"]["at_head"] is False
    assert products["extra"]["head"]
    assert REGISTRY.get_sample_value("contimg_db_schema_at_head", {"database": "products"}) == 0
    table = cli.invoke(main, ["health"])
    assert table.exit_code == 1
    assert f"products: behind head {products['extra']['head']} (at base)" in table.output

    upgrade = cli.invoke(main, ["db", "upgrade"])
    assert upgrade.exit_code == 0, upgrade.output
    result = cli.invoke(main, ["health"])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[-4:] == ["REVISION", "HEAD", "AT", "HEAD"]
    assert all(row.rstrip().endswith("yes") for row in rows[: len(DATABASE_NAMES)])
    assert REGISTRY.get_sample_value("contimg_db_schema_at_head", {"database": "products"}) == 1


def test_missing_sqlite_files_are_reported_not_created(data_dir: Path) -> None:
    result = CliRunner().invoke(main, ["health"])
    assert result.exit_code == 1
    for name in DATABASE_NAMES:
        assert any(
            line.startswith(f"{name} ") and "MISSING" in line for line in result.output.splitlines()
        )
    assert "does not exist. Run `contimg db upgrade`" in result.output
    assert sorted(p.name for p in data_dir.iterdir()) == ["dagster_home"]


def test_help_documents_the_exit_statuses() -> None:
    result = CliRunner().invoke(main, ["health", "--help"])
    text = " ".join(result.output.split())
    assert "Exit status: 0 every database reachable and at head; 1" in text
    assert "2 a malformed setting" in text
