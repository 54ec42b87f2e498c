"""The embedded default's Dagster event log: Dagster's SQLite storage, two costs removed.

Every event of a run (a log line, a materialization, a check result) is a write to SQLite. The
stock `SqliteEventLogStorage` builds a new SQLAlchemy engine for every write (and for every
`has_table` probe) and commits each in WAL mode with `synchronous=FULL`, an fsync per commit;
an asset event commits several times. Measured on this project's 2-core VM: 58 ms per
materialization event and 10 ms per log line; a range backfill of a year writes thousands of
them (docs/performance.md, "Fixed costs of a run"). This subclass keeps one engine per shard
(still `NullPool`: no connection stays open between writes, exactly as before, so the daemon,
the webserver and run processes share the files as they did) and opens each connection with
`PRAGMA synchronous=NORMAL`, SQLite's recommended setting for WAL: the database stays
consistent after any crash, and a transaction committed just before a power cut or a kernel
crash (not a process crash) may be lost. For an event log of the embedded default that is the
right trade; production keeps its events in PostgreSQL (instance_templates/production.yaml).

Files, tables and migrations are Dagster's own: a home written with the stock storage opens
with this one and back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import SqliteStorageConfig
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from resources.errors import ConfigurationError

#: Where Dagster's default storage keeps the event logs, relative to DAGSTER_HOME.
EVENT_LOG_DIR = os.path.join("history", "runs")


def _relaxed_sync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class ContimgSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with an engine per shard and WAL `synchronous=NORMAL`.

    Config: `base_dir`, the absolute path of the Dagster home (`contimg init-home` writes it);
    the shards go to `<base_dir>/history/runs`, where Dagster's default storage has them.
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        if not os.path.isabs(base_dir):
            raise ConfigurationError(
                "event_log_storage.config.base_dir",
                f"{base_dir!r} is not the absolute path of the Dagster home",
                hint="Write dagster.yaml with `contimg init-home` (it puts the home's path "
                "there), or set base_dir to it by hand.",
            )
        self._engines: dict[str, Engine] = {}
        self._engines_lock = threading.Lock()
        self._known_tables: set[str] = set()
        super().__init__(os.path.join(base_dir, EVENT_LOG_DIR), inst_data=inst_data)

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: SqliteStorageConfig
    ) -> ContimgSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            return self._engines.get(shard) or self._new_engine(shard)

    def _new_engine(self, shard: str) -> Engine:
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        event.listen(engine, "connect", _relaxed_sync)
        self._engines[shard] = engine
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # A table, once there, stays: Dagster asks before many writes.
        if table_name in self._known_tables:
            return True
        # Not under `_db_lock` (nor was it in Dagster's): it may be asked while a write holds it.
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            present = bool(engine.dialect.has_table(conn, table_name))
        if present:
            self._known_tables.add(table_name)
        return present

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()
