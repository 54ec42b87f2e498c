"""Faults injected for real, then recovery checked by reading the data back (issue 17).

- a PostgreSQL backend terminated mid-query (`pg_terminate_backend`, what a server restart or an
  administrator does to a session) is DatabaseConnectionLostError, not "cannot connect";
- a SQLite database on a file system that is really full (a 1 MB tmpfs) is DatabaseFullError
  naming the file; after space is freed the same Databases object writes and reads again;
- a SQLite file whose first 4 KB were overwritten is DatabaseDamagedError naming the file and
  the newest backup `db upgrade` wrote, and `db restore` of that backup brings the rows back;
- a migrated SQLite file truncated to 0 bytes is damaged for the health probe and the schema
  check (not "up", not "not migrated").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from migrations import runner
from resources import engines
from resources.database import Databases
from resources.errors import (
    DatabaseConnectionError,
    DatabaseConnectionLostError,
    DatabaseDamagedError,
    DatabaseFullError,
)
from tests.mounts import tmpfs
from tests.resources.metrics_support import wait_for
from tests.services import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER


@pytest.fixture(autouse=True)
def _fresh_engines() -> Iterator[None]:
    yield
    engines.dispose_all()


def _sqlite_urls(directory: Path) -> dict[str, str]:
    return {
        name: f"sqlite:///{directory / f'{name}.sqlite3'}"
        for name in ("products", "cal_registry", "hdf5", "ingest", "data_registry")
    }


# --- PostgreSQL: a backend terminated mid-query -------------------------------------------------


def _admin() -> psycopg.Connection:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True
    )


def _active_sleepers(database: str) -> list[int]:
    with _admin() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
            "AND query LIKE 'SELECT pg_sleep%%'",
            (database,),
        ).fetchall()
    return [int(row[0]) for row in rows]


@pytest.mark.postgres
def test_backend_terminated_mid_query_is_a_lost_connection(pg_database: str, pg_url: str) -> None:
    db = Databases(dict.fromkeys(("products", "ingest"), pg_url))
    with db.begin("ingest") as conn:
        conn.execute(text("CREATE TABLE facts (k text PRIMARY KEY, v int)"))
        conn.execute(text("INSERT INTO facts VALUES ('a', 1)"))
    caught: list[BaseException] = []

    def long_query() -> None:
        try:
            with db.connect("ingest") as conn:
                conn.execute(text("SELECT pg_sleep(60)"))
        except DatabaseConnectionError as exc:
            caught.append(exc)

    worker = threading.Thread(target=long_query)
    worker.start()
    pids = wait_for("the query to run", lambda: _active_sleepers(pg_database) or None)
    with _admin() as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    worker.join(30)
    assert not worker.is_alive()

    assert len(caught) == 1
    error = caught[0]
    assert isinstance(error, DatabaseConnectionLostError)
    assert "lost the connection to postgresql+psycopg://" in str(error)
    assert "mid-query" in str(error) and "re-run, the work is idempotent" in str(error)
    assert "cannot connect" not in str(error)
    assert "Check that the server is up" not in str(error)
    # Recovery: the pool discarded the dead connection; the same object reads the data back.
    with db.connect("ingest") as conn:
        assert conn.execute(text("SELECT v FROM facts WHERE k = 'a'")).scalar_one() == 1


# --- SQLite on a full file system ---------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MB file system (tmpfs), unmounted afterwards; skipped where mounting fails."""
    with tmpfs(tmp_path / "small", "size=1m") as mountpoint:
        try:
            yield mountpoint
        finally:
            engines.dispose_all()


def _fill(directory: Path) -> Path:
    """Take every free block of the file system holding `directory`."""
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        chunk = b"\0" * 65536
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError:
            pass  # ENOSPC: the disk is full, which is the point
    return filler


def test_full_disk_is_a_typed_error_naming_the_file(small_fs: Path) -> None:
    urls = _sqlite_urls(small_fs)
    db = Databases(urls)
    with db.begin("products") as conn:
        conn.execute(text("CREATE TABLE blobs (id integer PRIMARY KEY, data blob)"))
        conn.execute(text("INSERT INTO blobs (data) VALUES (randomblob(1000))"))
    filler = _fill(small_fs)

    with pytest.raises(DatabaseFullError) as raised, db.begin("products") as conn:
        for _ in range(50):
            conn.execute(text("INSERT INTO blobs (data) VALUES (randomblob(100000))"))
    error = raised.value
    path = str(small_fs / "products.sqlite3")
    assert error.location == path
    assert f"database 'products': {path} is full" in str(error)
    assert "Free space on the file system holding" in str(error)

    filler.unlink()  # the operator frees space; the same object works again
    with db.begin("products") as conn:
        conn.execute(text("INSERT INTO blobs (data) VALUES (randomblob(1000))"))
    with db.connect("products") as conn:
        assert conn.execute(text("SELECT count(*) FROM blobs")).scalar_one() == 2


def test_full_disk_during_a_migration_leaves_the_revision_and_says_why(small_fs: Path) -> None:
    url = _sqlite_urls(small_fs)["products"]
    runner.upgrade("products", url, "products_0001", backup=False)
    filler = _fill(small_fs)
    # Full before the first revision (opening the WAL index) or during one (then a
    # MigrationError saying the database is still at products_0001): either way typed.
    with pytest.raises((DatabaseFullError, runner.MigrationError)) as raised:
        runner.upgrade("products", url, backup=False)
    message = str(raised.value)
    assert "is full" in message and "Free space on the file system holding" in message
    assert "Check that the server is up" not in message
    filler.unlink()
    assert runner.status("products", url).current == "products_0001"
    assert runner.upgrade("products", url, backup=False).after == runner.head_revision("products")


# --- damaged SQLite files -----------------------------------------------------------------------


def _migrated_with_a_backup(directory: Path) -> tuple[dict[str, str], Path]:
    """Products migrated in two steps (so `db upgrade` wrote a backup) holding one row."""
    urls = _sqlite_urls(directory)
    runner.upgrade("products", urls["products"], "products_0001")
    with Databases(urls).begin("products") as conn:
        conn.execute(text("CREATE TABLE notes (n text)"))
        conn.execute(text("INSERT INTO notes VALUES ('kept')"))
    engines.dispose_all()
    result = runner.upgrade("products", urls["products"])
    assert result.backup_path is not None
    return urls, Path(result.backup_path)


def test_overwritten_header_names_the_file_and_the_backup_to_restore(tmp_path: Path) -> None:
    urls, backup = _migrated_with_a_backup(tmp_path)
    path = tmp_path / "products.sqlite3"
    with open(path, "r+b") as handle:
        handle.write(os.urandom(4096))
    db = Databases(urls)

    result = db.health("products", create_missing=False)
    assert not result.ok and result.error_class == "DatabaseDamagedError"
    with pytest.raises(DatabaseDamagedError) as raised:
        Databases(urls, require_schema=True).engine("products")
    message = str(raised.value)
    assert f"the SQLite file {path} is damaged" in message
    assert "file is not a database" in message
    assert f"contimg db restore --db products --from {backup} --yes" in message
    assert "Check that the server is up" not in message
    with pytest.raises(DatabaseDamagedError):
        runner.status("products", urls["products"])

    engines.dispose_all()
    runner.restore_sqlite_backup(urls["products"], backup, name="products")
    with Databases(urls).connect("products") as conn:
        assert conn.execute(text("SELECT n FROM notes")).scalar_one() == "kept"
    assert runner.status("products", urls["products"]).current == "products_0001"


def test_truncated_migrated_file_is_damaged_not_up(tmp_path: Path) -> None:
    urls = _sqlite_urls(tmp_path)
    runner.upgrade("ingest", urls["ingest"])
    path = tmp_path / "ingest.sqlite3"
    path.write_bytes(b"")  # truncated to 0 bytes

    db = Databases(urls)
    result = db.health("ingest", create_missing=False)
    assert not result.ok
    assert result.error_class == "DatabaseDamagedError"
    assert "migrated before but holds no table" in (result.error_message or "")
    with pytest.raises(DatabaseDamagedError) as raised:
        Databases(urls, require_schema=True).engine("ingest")
    assert "--recreate" in str(raised.value)

    # A file nobody migrated (no record, no backup) is merely empty: not migrated, up.
    fresh = tmp_path / "hdf5.sqlite3"
    fresh.write_bytes(b"")
    assert db.health("hdf5", create_missing=False).ok
