"""The embedded default's Dagster event log: Dagster's SQLite storage, its write costs removed.

Every event of a run (a log line, a materialization, a check result, each "planned" row written
when a run is created: one per asset and partition, ~3,000 for a year's backfill) is a write to
SQLite. The stock `SqliteEventLogStorage` builds a new SQLAlchemy engine and a new connection for
every write (and for every `has_table` probe), and commits each in WAL mode with
`synchronous=FULL`, an fsync per commit. Closing the last connection to a WAL file also
checkpoints it, with fsyncs, so a connection per write pays that too. Measured on this
project's 2-core VM: 58 ms per materialization event and 10 ms per log line with the stock
storage; 6–9 ms per planned event with an engine per file on `NullPool`, 1.3–1.6 ms with that
engine's connections kept (docs/performance.md, "Fixed costs of a run").

So this subclass keeps one engine per shard, keeps its connections open between writes
(`QueuePool`, at most `POOLED_PER_SHARD` idle each) for the `OPEN_SHARDS` shards used last
(the index and the current run's file are the busy ones; an older shard's engine is disposed,
so a webserver that reads thousands of runs holds a bounded number of files open), and opens
each connection with `PRAGMA synchronous=NORMAL`, SQLite's recommended setting for WAL: the
database stays consistent after any crash, and a transaction committed just before a power cut
or a kernel crash (not a process crash) may be lost. For an event log of the embedded default
that is the right trade; production keeps its events in PostgreSQL
(instance_templates/production.yaml). An idle connection holds no lock and no snapshot (the pool
rolls back on check-in), so the daemon, the webserver and run processes share the files as
before; a forked child drops the parent's connections without closing them (SQLAlchemy's rule
for engines across `fork`).

Files, tables and migrations are Dagster's own: a home written with the stock storage opens
with this one and back.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
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
from sqlalchemy.pool import QueuePool

from resources.errors import ConfigurationError

#: Where Dagster's default storage keeps the event logs, relative to DAGSTER_HOME.
EVENT_LOG_DIR = os.path.join("history", "runs")

#: Shards (the index and run files) whose engine and idle connections stay open.
OPEN_SHARDS = 8

#: Idle connections an open shard keeps.
POOLED_PER_SHARD = 2

#: Every live storage of this process, for the fork hook.
_STORAGES: weakref.WeakSet[ContimgSqliteEventLogStorage] = weakref.WeakSet()


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
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        self._known_tables: set[str] = set()
        self._asset_key_index_cols = False
        super().__init__(os.path.join(base_dir, EVENT_LOG_DIR), inst_data=inst_data)
        _STORAGES.add(self)

    @classmethod
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: SqliteStorageConfig
    ) -> ContimgSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = self._engines[shard] = self._new_engine(shard)
            while len(self._engines) > OPEN_SHARDS:
                # The least recently used; a connection of it still checked out by another
                # thread stays valid and is closed when it comes back.
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    def _new_engine(self, shard: str) -> Engine:
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=POOLED_PER_SHARD,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        event.listen(engine, "connect", _relaxed_sync)
        return engine

    def _forget_connections(self) -> None:
        """In a forked child: the parent's connections are the parent's; open new ones."""
        for engine in self._engines.values():
            engine.dispose(close=False)

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

    def _has_asset_key_index_cols_on_connection(self, conn: Connection) -> bool:
        # Dagster inspects the asset_keys table's columns for every asset event (~0.4 ms each,
        # 5,840 times in a year's backfill); a column, once there, stays.
        if self._asset_key_index_cols:
            return True
        present = super()._has_asset_key_index_cols_on_connection(conn)
        self._asset_key_index_cols = present
        return present

    def _close_engines(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        # Dagster's wipe deletes the run files: no connection may stay open on a deleted file.
        self._close_engines()
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


def _after_fork_in_child() -> None:
    for storage in list(_STORAGES):
        storage._forget_connections()


os.register_at_fork(after_in_child=_after_fork_in_child)
