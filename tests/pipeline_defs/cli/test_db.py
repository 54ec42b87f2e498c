"""`contimg db ...` through click's CliRunner against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Column, Integer, MetaData

from migrations import runner
from pipeline_defs.cli import main
from resources.models import METADATA
from resources.settings import DATABASE_NAMES


@pytest.fixture
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the migrations tree, so `db revision` does not write into the repo."""
    copy = tmp_path / "migrations"
    shutil.copytree(
        runner.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    monkeypatch.setattr(runner, "MIGRATIONS_DIR", copy)
    return copy


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["db", *args], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


def test_upgrade_status_check_cycle(data_dir: Path) -> None:
    code, out, _ = invoke("check")
    assert code == 1 and out.count("NOT AT HEAD") == len(DATABASE_NAMES)

    code, out, _ = invoke("upgrade", "--db", "products", "--db", "ingest")
    assert code == 0
    assert "products: upgraded base -> products_0005" in out and "hdf5" not in out
    code, out, _ = invoke("upgrade", "--no-backup")
    assert code == 0
    assert "products: already at products_0005; nothing to do" in out
    assert "cal_registry: upgraded base -> cal_registry_0002" in out

    code, out, err = invoke("check")
    assert code == 0 and err == ""
    assert out.count(": ok (at head") == len(DATABASE_NAMES)

    code, out, _ = invoke("status", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["database"] for r in rows] == list(DATABASE_NAMES)
    assert all(r["at_head"] and r["pending"] == [] for r in rows)
    code, table, _ = invoke("status")
    assert code == 0 and table.splitlines()[0].split()[:2] == ["DATABASE", "CURRENT"]
    assert "products_0005" in table and str(data_dir) in table


def test_check_reports_drift(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke("upgrade", "--no-backup")[0] == 0
    drifted = MetaData(naming_convention=METADATA["ingest"].naming_convention)
    METADATA["ingest"].tables["ingest_queue"].to_metadata(drifted)
    drifted.tables["ingest_queue"].append_column(Column("priority", Integer, nullable=True))
    monkeypatch.setitem(METADATA, "ingest", drifted)
    code, out, err = invoke("check")
    assert code == 1
    assert "ingest: DRIFT between the models and the migrations at ingest_0003:" in out
    assert "column ingest_queue.priority (INTEGER) is in the models but not in the database" in out
    assert "products: ok" in out
    assert err.strip() == "error: db check found 1 problem(s)"


def test_downgrade_asks_and_backs_up(data_dir: Path) -> None:
    assert invoke("upgrade", "--db", "products", "--no-backup")[0] == 0
    code, out, err = invoke("downgrade", "--db", "products", "--to", "-1", input="n\n")
    assert code == 1 and "undoing products_0005" in out
    assert "downgrade aborted" in err
    assert runner.status("products").current == "products_0005"

    code, out, _ = invoke("downgrade", "--db", "products", "--to", "products_0001", input="y\n")
    assert code == 0 and "downgraded products_0005 -> products_0001" in out
    assert "backup " + str(data_dir / "products.sqlite3.bak-") in out
    code, out, _ = invoke("downgrade", "--db", "products", "--to", "products_0001", "--yes")
    assert code == 0 and "nothing to do" in out

    backup = runner.sqlite_backups(runner.database_url("products"))[-1]
    assert invoke("upgrade", "--db", "products")[0] == 0
    code, out, _ = invoke("restore", "--db", "products", "--from", str(backup), "--yes")
    assert code == 0 and "now at products_0005" in out  # the backup was taken at 0005


def test_errors_are_one_line_without_traceback(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = invoke("downgrade", "--db", "products", "--to", "zzz", "--yes")
    assert code == 1 and err.startswith("error: database 'products': unknown or ambiguous")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err

    monkeypatch.setenv("CONTIMG_DB_HDF5_URL", "postgresql+psycopg://u:s3cret@127.0.0.1:1/x")
    code, out, err = invoke("status")
    assert code == 1
    assert "s3cret" not in out + err and "***" in err and "hdf5" in err
    code, _, err = invoke("upgrade", "--db", "hdf5")
    assert code == 1 and "s3cret" not in err and len(err.strip().splitlines()) == 1
    code, _, err = invoke("history", "--db", "nope")
    assert code == 2 and "Invalid value" in err


def test_history_and_revision(data_dir: Path, migrations_copy: Path) -> None:
    code, out, _ = invoke("history", "--db", "ingest")
    assert code == 0
    assert out.splitlines()[0].startswith("base -> ingest_0001: ")
    assert out.splitlines()[1].startswith("ingest_0001 -> ingest_0002: Add ingest_queue")
    assert out.splitlines()[2].startswith("ingest_0002 -> ingest_0003 (head): Add the `missing`")
    code, out, _ = invoke("revision", "--db", "ingest", "-m", "add priority")
    assert code == 0 and "ingest_0004" in out
    written = migrations_copy / "ingest" / "versions" / "ingest_0004_add_priority.py"
    assert written.is_file()
    assert "down_revision: str | None = 'ingest_0003'" in written.read_text()
    code, _, err = invoke("revision", "--db", "ingest", "-m", "auto", "--autogenerate")
    assert code == 1 and "upgrade" in err  # the database is not at head (it is empty)


@pytest.mark.postgres
def test_upgrade_and_check_on_one_shared_postgres(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in DATABASE_NAMES:
        monkeypatch.setenv(f"CONTIMG_DB_{name.upper()}_URL", pg_url)
    code, out, _ = invoke("upgrade")
    assert code == 0 and out.count("upgraded base") == len(DATABASE_NAMES)
    code, out, _ = invoke("check")
    assert code == 0, out
    code, out, _ = invoke("downgrade", "--db", "ingest", "--to", "-1", "--yes")
    assert code == 0 and "backup" not in out  # no SQLite backup for PostgreSQL
    code, out, _ = invoke("check")
    assert code == 1 and "ingest: NOT AT HEAD (current ingest_0002" in out
