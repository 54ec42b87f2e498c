"""Connection set-up under contention.

SQLite: the switch to WAL waits for the other connection. Two migrators racing on a fresh SQLite
file used to fail about one time in ten with `database is locked` at connect: changing the
journal mode does not use SQLite's busy handler.

PostgreSQL: a connection refused for "too many connections" is tried again for a moment, the
time a just-closed connection's server process takes to go.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from resources import engines, sqlite_wal
from resources.settings import PoolSettings
from tests.services import PG_HOST, PG_PORT, pg_execute_admin, temporary_pg_database


def test_wal_switch_waits_for_a_transaction_on_a_fresh_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "fresh.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # rollback-journal mode, write lock held
    holder.execute("CREATE TABLE t (x INTEGER)")

    backing_off = threading.Event()
    real_sleep = sqlite_wal.time.sleep

    def sleep(seconds: float) -> None:
        backing_off.set()  # the new connection met the lock and is waiting, not failing
        real_sleep(seconds)

    monkeypatch.setattr(sqlite_wal.time, "sleep", sleep)
    engine = engines.build_engine(f"sqlite:///{path}", PoolSettings(), poolclass=NullPool)
    outcome: dict[str, object] = {}

    def connect() -> None:
        try:
            with engine.connect() as conn:
                outcome["mode"] = conn.execute(text("PRAGMA journal_mode")).scalar_one()
        except OperationalError as exc:  # what the old set-up raised: recorded, asserted on
            outcome["error"] = exc

    worker = threading.Thread(target=connect)
    worker.start()
    assert backing_off.wait(10), "the second connection never met the held lock"
    assert worker.is_alive() and "error" not in outcome
    holder.execute("COMMIT")
    worker.join(30)
    holder.close()
    engine.dispose()
    assert outcome == {"mode": "wal"}


def test_an_existing_wal_file_is_not_switched_again(tmp_path: Path) -> None:
    path = tmp_path / "wal.sqlite3"
    engine = engines.build_engine(f"sqlite:///{path}", PoolSettings(), poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    # A reader inside a transaction does not stop a new connection (WAL: no switch needed).
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN IMMEDIATE")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    reader.execute("ROLLBACK")
    reader.close()
    engine.dispose()


def test_only_the_data_dir_is_created_for_a_sqlite_file(data_dir: Path, tmp_path: Path) -> None:
    """Issue 17: `db upgrade` used to create any missing directory tree of a SQLite URL."""
    shutil.rmtree(data_dir)
    engine = engines.build_engine(
        f"sqlite:///{data_dir / 'x.sqlite3'}", PoolSettings(), poolclass=NullPool
    )
    engine.dispose()
    assert data_dir.is_dir()

    elsewhere = tmp_path / "elsewhere" / "deeper" / "x.sqlite3"
    with pytest.raises(FileNotFoundError, match=f"the directory {elsewhere.parent} of"):
        engines.build_engine(f"sqlite:///{elsewhere}", PoolSettings(), poolclass=NullPool)
    assert not (tmp_path / "elsewhere").exists()

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        engines.build_engine(f"sqlite:///{blocker / 'x.sqlite3'}", PoolSettings())


# --- PostgreSQL: a refused connection tried again while a closed one is going away ------------


@pytest.mark.postgres
def test_a_connection_refused_for_too_many_waits_for_a_slot_then_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The role allows one connection; while another holds it, a new one is refused ("too many
    connections for role") and tried again, and gets in once the holder has closed. Held for
    longer than `REFUSED_RETRY_S`, the refusal comes through as before."""
    import psycopg

    with temporary_pg_database() as database:
        role = f"contimg_refused_{uuid.uuid4().hex[:8]}"
        pg_execute_admin(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
        try:
            url = f"postgresql+psycopg://{role}@{PG_HOST}:{PG_PORT}/{database}"
            holder = psycopg.connect(host=PG_HOST, port=PG_PORT, user=role, dbname=database)
            refused = threading.Event()
            real_sleep = engines.time.sleep

            def sleep(seconds: float) -> None:
                refused.set()  # the connect met the limit and waits, not failing
                real_sleep(seconds)

            monkeypatch.setattr(engines.time, "sleep", sleep)
            engine = engines.build_engine(url, PoolSettings(), poolclass=NullPool)
            outcome: dict[str, object] = {}

            def connect() -> None:
                try:
                    with engine.connect() as conn:
                        outcome["user"] = conn.execute(text("SELECT current_user")).scalar_one()
                except OperationalError as exc:
                    outcome["error"] = exc

            worker = threading.Thread(target=connect)
            worker.start()
            assert refused.wait(10), "the second connection was never refused"
            holder.close()
            worker.join(30)
            assert outcome == {"user": role}

            # Held throughout: refused after the retry window, with the server's reason.
            monkeypatch.setattr(engines, "REFUSED_RETRY_S", 0.2)
            with (
                psycopg.connect(host=PG_HOST, port=PG_PORT, user=role, dbname=database),
                pytest.raises(OperationalError, match="too many connections"),
            ):
                engine.connect()
            engine.dispose()
        finally:
            pg_execute_admin(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
            )
            pg_execute_admin(f'DROP ROLE IF EXISTS "{role}"')
