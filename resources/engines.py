"""Per-process SQLAlchemy engine cache.

Dagster runs each step in its own process under the multiprocess and Celery executors, and calls
resource hooks once per step; sensors run in the daemon's process. An engine (and its pool) is
therefore kept per process and per (URL, pool settings), shared by every resource instance in that
process, disposed in a forked child (never share sockets across fork) and at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, QueuePool, StaticPool

from resources.settings import PoolSettings, data_dir
from resources.sqlite_wal import ensure_wal

SQLITE_BUSY_TIMEOUT_MS = 30_000

_lock = threading.Lock()
# key: (url, pool settings, logical name or None, pool class or None)
_engines: dict[tuple[str, PoolSettings, str | None, type | None], Engine] = {}
_owner_pid = os.getpid()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """Filesystem path of a file-backed SQLite URL, else None (memory or other backends)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def ensure_sqlite_directory(path: Path) -> None:
    """Create the directory of a SQLite file only when it is the data directory.

    The embedded default puts every file in CONTIMG_DATA_DIR, which is created on first use. Any
    other missing directory is a mistake (a typo, an unmounted volume) that creating a tree
    would hide, so it is refused, naming the directory; sqlite3 alone would only say "unable to
    open database file". Raised as OSError: callers already report those per database.
    """
    parent = path.expanduser().resolve().parent
    if parent.is_dir():
        return
    if parent.exists():
        raise NotADirectoryError(
            f"the directory {parent} of the SQLite file {path} is not a directory"
        )
    if parent != data_dir():
        raise FileNotFoundError(
            f"the directory {parent} of the SQLite file {path} does not exist (only the data "
            f"directory {data_dir()} is created for you)"
        )
    parent.mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # WAL lets readers (sensors, the CLI) work while a step writes; foreign keys are off by
    # default in SQLite and our ON DELETE rules depend on them.
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        ensure_wal(cursor, SQLITE_BUSY_TIMEOUT_MS / 1000)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


# PostgreSQL's refusals when a server, role or database limit is reached (max_connections,
# CONNECTION LIMIT, the reserved superuser slots): the server is up, there are just too many.
TOO_MANY_CONNECTIONS = (
    "too many connections",
    "too many clients",
    "remaining connection slots are reserved",
)

#: How long a connection refused for "too many connections" is tried again.
REFUSED_RETRY_S = 2.0


def too_many_connections(reason: str) -> bool:
    return any(marker in reason.lower() for marker in TOO_MANY_CONNECTIONS)


def _connect_through_refusals(
    dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Connect, trying again for `REFUSED_RETRY_S` while the server says it has too many.

    The `database` concurrency pool hands a step's slot on when the step reports success, after
    its connections are closed; but a closed connection's server process takes a moment to
    exit, and until it has, it still counts against the role's or the server's limit. A step
    that takes the slot at once could be refused for a connection that no longer exists (CI saw
    one run of three fail so, with the limit exactly what the pool needs). Two seconds cover
    that moment; a limit really exceeded (steps holding their connections for seconds) still
    fails, as clearly as before, two seconds later.
    """
    deadline = time.monotonic() + REFUSED_RETRY_S
    delay = 0.01
    while True:
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as exc:
            if not too_many_connections(str(exc)) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.25)


def queue_pool_options(settings: PoolSettings) -> dict[str, Any]:
    """The QueuePool arguments of our settings, for the sync and the async engine alike."""
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        "pool_pre_ping": settings.pool_pre_ping,
    }


Bind = Connection | Engine


@contextmanager
def transaction(bind: Bind) -> Iterator[Connection]:
    """Run in the caller's transaction when given a Connection; open and commit one for an Engine.

    Lets the plain data functions (ingest queue, data registry) serve both a caller composing
    several steps in one transaction and a caller that just wants the step done.
    """
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    else:
        yield bind


def build_engine(url: str, settings: PoolSettings, *, poolclass: type | None = None) -> Engine:
    """A new engine with our pool, driver and connection settings (not cached)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            ensure_sqlite_directory(path)
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            }
            kwargs["poolclass"] = poolclass or QueuePool
    else:
        kwargs["poolclass"] = poolclass or QueuePool
        kwargs["connect_args"] = {"connect_timeout": max(1, round(settings.connect_timeout))}
    chosen = kwargs.get("poolclass")
    if isinstance(chosen, type) and issubclass(chosen, QueuePool):
        kwargs.update(queue_pool_options(settings))
    elif isinstance(chosen, type) and issubclass(chosen, NullPool):
        kwargs["pool_pre_ping"] = False
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
    else:
        event.listen(engine, "do_connect", _connect_through_refusals)
    return engine


def _reset_after_fork() -> None:
    # The child must not use the parent's sockets: forget (without closing) inherited pools.
    # The lock is replaced, not taken: another parent thread may have held it at fork time.
    global _owner_pid, _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()
    _owner_pid = os.getpid()


def get_engine(
    url: str,
    settings: PoolSettings | None = None,
    *,
    name: str | None = None,
    poolclass: type | None = None,
    configure: Callable[[Engine], None] | None = None,
) -> Engine:
    """The process-wide engine for this URL and pool settings, created on first use.

    `name` (a logical database) is part of the key so that two logical databases sharing one URL
    still get one pool each, with unambiguous metrics; `configure` runs once, under the cache
    lock, before any other caller can see the new engine (used to attach pool instrumentation).
    """
    settings = settings or PoolSettings()
    key = (url, settings, name, poolclass)
    if os.getpid() != _owner_pid:
        _reset_after_fork()
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = build_engine(url, settings, poolclass=poolclass)
            if configure is not None:
                configure(engine)
            _engines[key] = engine
            _on_engine_created(url, engine)
        return engine


def async_url(url: str) -> URL:
    """The asyncio flavour of a URL: sqlite -> sqlite+aiosqlite; psycopg serves both modes."""
    parsed = make_url(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver != "aiosqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql" and driver in ("psycopg", "psycopg_async"):
        return parsed.set(drivername="postgresql+psycopg_async")
    return parsed


def build_async_engine(
    url: str, settings: PoolSettings, *, poolclass: type | None = None
) -> AsyncEngine:
    """A new (uncached) async engine with the same pool and connection settings as build_engine.

    Not cached: pooled asyncio connections belong to the event loop that opened them, so the
    caller owns the engine for the life of its loop and disposes it (see resources.database).
    """
    parsed = async_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            kwargs["poolclass"] = StaticPool
        else:
            ensure_sqlite_directory(path)
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            if poolclass is not None:
                kwargs["poolclass"] = poolclass
    else:
        kwargs["connect_args"] = {"connect_timeout": max(1, round(settings.connect_timeout))}
        if poolclass is not None:
            kwargs["poolclass"] = poolclass
    if kwargs.get("poolclass") is not StaticPool:
        kwargs.update(queue_pool_options(settings))
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    else:
        event.listen(engine.sync_engine, "do_connect", _connect_through_refusals)
    return engine


_engine_created_hooks: list[Any] = []


def on_engine_created(hook: Any) -> None:
    """Register a callback(url, engine) run for every new cached engine (metrics, logging)."""
    _engine_created_hooks.append(hook)


def _on_engine_created(url: str, engine: Engine) -> None:
    for hook in _engine_created_hooks:
        hook(url, engine)


def release_connections() -> None:
    """Close every pooled connection of this process's engines, keeping the engines usable.

    For the end of a step or run in a process that outlives it (a Celery pool process, an
    in-process run): Dagster frees the step's `database` pool slot as soon as it sees the step
    succeed, so the connections must be closed before the step reports back, not after
    (a Celery `task_postrun` signal fires after the result is stored: too late; the next step
    could connect while these were still open, beyond the connection arithmetic).
    """
    with _lock:
        engines = list(_engines.values())
    for engine in engines:
        engine.dispose()


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


os.register_at_fork(after_in_child=_reset_after_fork)
atexit.register(dispose_all)
