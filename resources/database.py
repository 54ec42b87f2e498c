"""Pooled access to the five logical databases, with health checks and pool metrics.

`Databases` is the plain object (usable from the CLI, tests and scripts, without Dagster); the
Dagster resource `Database` (resources/dagster_resources.py) builds one and hands it to assets. Engines come from the per-process
cache in `resources.engines`: one engine, hence one pool, per logical database per process (the
cache key includes the logical name, so two logical databases sharing one URL still get a pool
each and their metrics never mix). Dagster runs each step in its own process under the
multiprocess and Celery executors, so pools are per step and small; see docs/database-resource.md.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import (
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool, QueuePool
from sqlalchemy.pool.base import ConnectionPoolEntry, PoolProxiedConnection

from resources import metrics
from resources.engines import build_async_engine, get_engine, sqlite_path, too_many_connections
from resources.errors import (
    ContimgError,
    DatabaseConnectionError,
    DatabaseConnectionLostError,
    DatabaseDamagedError,
    DatabaseError,
    DatabaseFullError,
    DatabaseNotMigratedError,
    DatabaseUnwritableError,
    PoolExhaustedError,
)
from resources.secrets import mask_text, mask_url
from resources.settings import (
    DATABASE_NAMES,
    PoolSettings,
    check_database_name,
    check_database_url,
    database_url,
    get,
)

logger = logging.getLogger(__name__)

PASSWORD_ENV_VAR = "CONTIMG_DB_PASSWORD"

#: Extra health probe: called with (database name, open connection) inside the same timeout as
#: the `SELECT 1`; returns extra fields for the result (e.g. {"revision": ..., "head": ...}).
HealthProbe = Callable[[str, Connection], Mapping[str, Any]]

#: (database name, open connection) -> (revision recorded in the database, head revision of its
#: migrations). `migrations.runner` installs the real one when it is imported: resources sit below
#: migrations (docs/architecture.md), so they are handed the reader instead of importing it.
SchemaStateReader = Callable[[str, Connection], tuple[str | None, str | None]]


# --- schema at head, checked once per process and database -------------------------------------

_schema_reader: SchemaStateReader | None = None
_verified_lock = threading.Lock()
#: (logical name, URL) of the databases found at head in this process. Only successes are kept,
#: so a database upgraded while a daemon runs is accepted at its next use without a restart.
_verified: set[tuple[str, str]] = set()


def install_schema_reader(reader: SchemaStateReader) -> None:
    """Use `reader` for the schema check of `Databases(require_schema=True)`."""
    global _schema_reader
    _schema_reader = reader


def forget_schema_checks() -> None:
    """Check every database again at its next use (after a downgrade in the same process)."""
    with _verified_lock:
        _verified.clear()


def _schema_state(name: str, conn: Connection) -> tuple[str | None, str | None]:
    if _schema_reader is not None:
        return _schema_reader(name, conn)
    # Nobody imported migrations.runner (a plain script): the head is unknown here, so a
    # recorded revision counts as migrated and only an empty schema is refused.
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{name}"})
    current = context.get_current_revision()
    return current, current if current is not None else "head"


# --- cumulative per-database counts (per process) -------------------------------------------


class _Counts:
    """Exhaustion and connection-error counts of one logical database in this process.

    Kept per logical name rather than per engine so that they survive pool re-creation and
    cover the async engines of the same database too.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exhausted = 0
        self.connection_errors = 0


_counts_lock = threading.Lock()
_counts: dict[str, _Counts] = {}


def _counts_for(name: str) -> _Counts:
    with _counts_lock:
        counts = _counts.get(name)
        if counts is None:
            counts = _counts[name] = _Counts()
        return counts


# --- pool status ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolStatus:
    """A snapshot of one database's pool in this process."""

    database: str
    pool_class: str
    size: int
    checked_out: int
    overflow: int
    checked_in: int
    exhausted_total: int
    connection_errors_total: int

    def describe(self) -> str:
        return (
            f"size={self.size} checked_out={self.checked_out} overflow={self.overflow} "
            f"checked_in={self.checked_in}"
        )


def _pool_numbers(pool: Pool) -> tuple[int, int, int, int]:
    """(size, checked_out, overflow beyond size, checked_in); zeros for non-queue pools."""
    if isinstance(pool, QueuePool):
        return pool.size(), pool.checkedout(), max(0, pool.overflow()), pool.checkedin()
    return 0, 0, 0, 0


def _snapshot(name: str, pool: Pool) -> PoolStatus:
    size, out, overflow, checked_in = _pool_numbers(pool)
    counts = _counts_for(name)
    with counts.lock:
        exhausted, errors = counts.exhausted, counts.connection_errors
    return PoolStatus(
        database=name,
        pool_class=type(pool).__name__,
        size=size,
        checked_out=out,
        overflow=overflow,
        checked_in=checked_in,
        exhausted_total=exhausted,
        connection_errors_total=errors,
    )


# --- SQLite files: backups, the record of a migration, damage --------------------------------

#: `<file>.bak-<UTC timestamp>-<revision>`: the backups `contimg db upgrade`/`downgrade` write next
#: to a SQLite database (migrations/runner.py). Named here, below the runner, because the
#: damaged-file error points to them.
SQLITE_BACKUP_MARKER = ".bak-"
#: `<file>.migrated`: written by the runner after every migration that leaves the file at a
#: revision. It outlives the file's contents, so an emptied file (0 bytes, tables gone) can be
#: told from one never migrated (docs/ops/database-migrations.md, "A damaged database").
SQLITE_MIGRATED_SUFFIX = ".migrated"


def sqlite_backups_of(path: Path) -> list[Path]:
    """Backups of one SQLite file, oldest first (their names sort by time)."""
    return sorted(path.parent.glob(f"{path.name}{SQLITE_BACKUP_MARKER}*"))


def sqlite_migrated_record(path: Path) -> Path:
    return path.with_name(f"{path.name}{SQLITE_MIGRATED_SUFFIX}")


def sqlite_was_migrated(path: Path) -> bool:
    """True when the runner has migrated this file before: its record or a backup exists."""
    return sqlite_migrated_record(path).is_file() or bool(sqlite_backups_of(path))


def damaged_sqlite(name: str, path: Path, reason: str) -> DatabaseDamagedError:
    backups = tuple(str(p) for p in sqlite_backups_of(path))
    return DatabaseDamagedError(name, str(path), reason, backups=backups)


def emptied_sqlite(name: str, path: Path, conn: Connection) -> DatabaseDamagedError | None:
    """The error for a SQLite file that was migrated before and holds no table now, else None.

    The rule (docs/ops/database-migrations.md): the file has no table at all (0 bytes, or every
    table dropped) while its migration record or a backup says it was migrated. A file that was
    never migrated (a probe created it, or nobody ran `db upgrade` yet) is just not migrated.
    """
    if not sqlite_was_migrated(path):
        return None
    tables = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
    if tables:
        return None
    backups = tuple(str(p) for p in sqlite_backups_of(path))
    reason = "it was migrated before but holds no table any more (truncated or emptied)"
    return DatabaseDamagedError(name, str(path), reason, backups=backups, emptied=True)


# SQLite's primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26
# PostgreSQL SQLSTATEs: disk_full, and the server ending a session (admin_shutdown: a
# pg_terminate_backend or a fast shutdown; crash_shutdown: another backend crashed).
_PG_DISK_FULL = "53100"
_PG_SESSION_ENDED = ("57P01", "57P02", "57P03")
#: What the drivers say when an established connection dies (psycopg, libpq, pysqlite).
_LOST_MARKERS = (
    "terminating connection",
    "server closed the connection unexpectedly",
    "consuming input failed",
    "connection already closed",
    "the connection is closed",
    "ssl connection has been closed unexpectedly",
    "connection reset by peer",
)


_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14


def unwritable_reason(path: Path) -> str | None:
    """Why `path` (a SQLite file) or its directory cannot be written, or None when they can.

    A real write, not os.access: root passes permission checks on a read-only mount.
    """
    directory = path.parent
    if not directory.is_dir():
        return None  # a missing directory is the settings' concern (named there)
    probe = directory / f".contimg-write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        if path.exists():
            with path.open("r+b"):
                pass
    except OSError as exc:
        # Only "not writable" counts (a read-only mount, a permission); anything else, such as a
        # directory where the file should be, stays a plain "cannot connect".
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return exc.strerror or type(exc).__name__
    return None


def _no_space_left(path: Path) -> bool:
    """True when the file system holding `path` has no block left for us."""
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return stats.f_bavail == 0


def classify_database_error(
    name: str,
    url: str,
    masked: str,
    exc: BaseException,
    *,
    established: bool,
    is_disconnect: bool = False,
    secrets: tuple[str, ...] = (),
) -> DatabaseError | None:
    """The typed error for a driver failure that is not an ordinary SQL error, else None.

    - a full disk (SQLite SQLITE_FULL, ENOSPC, PostgreSQL disk_full) -> DatabaseFullError naming
      the file (SQLite) or the masked URL;
    - a SQLite file that is not a database or is malformed -> DatabaseDamagedError naming the
      file and its newest backup;
    - an `established` connection that died mid-query (server restart, terminated backend;
      SQLAlchemy's disconnect detection or the drivers' words) -> DatabaseConnectionLostError.

    Connection refusals are left to the caller: they are "cannot connect" with its own hints.
    """
    orig = getattr(exc, "orig", None) or exc
    reason = mask_text(f"{type(orig).__name__}: {orig}".strip(), secrets).splitlines()[0]
    text_ = str(orig).lower()
    code = getattr(orig, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    sqlstate = getattr(orig, "sqlstate", None)
    path = sqlite_path(url)
    if (
        primary == _SQLITE_FULL
        # SQLite reports a full disk met while mapping the WAL index (-shm) as an I/O error.
        or (primary == _SQLITE_IOERR and path is not None and _no_space_left(path))
        or sqlstate == _PG_DISK_FULL
        or getattr(orig, "errno", None) == errno.ENOSPC
        or "database or disk is full" in text_
        or "no space left on device" in text_
    ):
        return DatabaseFullError(name, str(path) if path is not None else masked, reason)
    if path is not None and (
        primary in (_SQLITE_NOTADB, _SQLITE_CORRUPT)
        or "file is not a database" in text_
        or "database disk image is malformed" in text_
    ):
        return damaged_sqlite(name, path, reason)
    if path is not None and (
        primary in (_SQLITE_READONLY, _SQLITE_CANTOPEN)
        or "unable to open database file" in text_
        or "readonly database" in text_
    ):
        why = unwritable_reason(path)
        if why is not None:
            return DatabaseUnwritableError(name, str(path), str(path.parent), why)
    if established and (
        is_disconnect
        or sqlstate in _PG_SESSION_ENDED
        or any(marker in text_ for marker in _LOST_MARKERS)
    ):
        return DatabaseConnectionLostError(name, masked, reason)
    return None


def install_error_translation(name: str, engine: Engine, *, secrets: tuple[str, ...] = ()) -> None:
    """Raise the typed errors of `classify_database_error` from `engine` (for engines built
    outside `Databases`, such as the migration runner's)."""
    url = engine.url.render_as_string(hide_password=False)
    masked = mask_url(url)

    @event.listens_for(engine, "handle_error")
    def _translate(ctx: ExceptionContext) -> BaseException | None:
        if ctx.is_pre_ping:
            return None
        established = not (ctx.connection is None and ctx.execution_context is None)
        return classify_database_error(
            name,
            url,
            masked,
            ctx.original_exception,
            established=established,
            is_disconnect=ctx.is_disconnect,
            secrets=secrets,
        )


# --- pool instrumentation ---------------------------------------------------------------------


class _Observer:
    """What an instrumented pool needs to know: its logical name and whether it owns the gauges.

    Only the synchronous per-process engine sets the gauges; short-lived async engines of the
    same database would otherwise overwrite them with their own, unrelated numbers. The labelled
    metric children are looked up once here: this runs on every checkout.
    """

    def __init__(self, database: str, *, gauges: bool = True) -> None:
        self.database = database
        self.gauges = gauges
        self.wait = metrics.DB_POOL_WAIT_SECONDS.labels(database=database)
        self._size = metrics.DB_POOL_SIZE.labels(database=database)
        self._out = metrics.DB_POOL_CHECKED_OUT.labels(database=database)
        self._overflow = metrics.DB_POOL_OVERFLOW.labels(database=database)
        self._max_overflow = metrics.DB_POOL_MAX_OVERFLOW.labels(database=database)

    def refresh(self, pool: Pool) -> None:
        if not self.gauges:
            return
        size, out, overflow, _ = _pool_numbers(pool)
        self._size.set(size)
        self._out.set(out)
        self._overflow.set(overflow)
        if isinstance(pool, QueuePool):
            self._max_overflow.set(max(0, pool._max_overflow))  # no public accessor


class _ObservedPoolMixin:
    """Times checkouts and turns a pool timeout into PoolExhaustedError, on every code path.

    Done in the pool (not around our own context managers) so that ORM sessions, Alembic and
    anything else using the engine get the same error, count and histogram. `connect()` is the
    pool's public checkout entry point; `_do_return_conn` is where a connection is back in the
    queue (the `checkin` event fires just before that, when the numbers are not final yet).
    """

    contimg_observer: _Observer | None = None

    def connect(self) -> PoolProxiedConnection:
        observer = self.contimg_observer
        if observer is None:
            return super().connect()  # type: ignore[misc]
        start = time.perf_counter()
        try:
            conn = super().connect()  # type: ignore[misc]
        except sa_exc.TimeoutError as exc:
            observer.wait.observe(time.perf_counter() - start)
            raise _exhausted(observer.database, self) from exc  # type: ignore[arg-type]
        observer.wait.observe(time.perf_counter() - start)
        return conn  # the gauges were refreshed by the "checkout" event

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        super()._do_return_conn(record)  # type: ignore[misc]
        if self.contimg_observer is not None:
            self.contimg_observer.refresh(self)  # type: ignore[arg-type]

    def recreate(self) -> Pool:
        # dispose() and pool invalidation build a fresh pool of the same class: keep observing.
        new = super().recreate()  # type: ignore[misc]
        new.contimg_observer = self.contimg_observer
        return new


class ObservedQueuePool(_ObservedPoolMixin, QueuePool):
    """QueuePool with contimg metrics and PoolExhaustedError."""


class ObservedAsyncQueuePool(_ObservedPoolMixin, AsyncAdaptedQueuePool):
    """AsyncAdaptedQueuePool with contimg metrics and PoolExhaustedError."""


def _exhausted(name: str, pool: Pool) -> PoolExhaustedError:
    counts = _counts_for(name)
    with counts.lock:
        counts.exhausted += 1
    metrics.DB_POOL_EXHAUSTED.labels(database=name).inc()
    status = _snapshot(name, pool)
    timeout = pool.timeout() if isinstance(pool, QueuePool) else 0.0
    logger.warning(
        "database %r: pool exhausted after %.3g s (%s)", name, timeout, status.describe()
    )
    return PoolExhaustedError(name, timeout, status.describe())


def _instrument(name: str, engine: Engine, masked: str, secrets: tuple[str, ...], *, gauges: bool):
    """Attach the observer and the connection-error translation to a new engine."""
    observer = _Observer(name, gauges=gauges)
    if isinstance(engine.pool, _ObservedPoolMixin):
        engine.pool.contimg_observer = observer

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi: Any, _rec: ConnectionPoolEntry, _proxy: Any) -> None:
        observer.refresh(engine.pool)

    @event.listens_for(engine, "close")
    def _on_close(_dbapi: Any, _rec: ConnectionPoolEntry) -> None:
        observer.refresh(engine.pool)

    url = engine.url.render_as_string(hide_password=False)

    @event.listens_for(engine, "handle_error")
    def _on_error(ctx: ExceptionContext) -> BaseException | None:
        # Pre-ping failures are recovered inside the pool (it reconnects): not an error for us.
        if ctx.is_pre_ping:
            return None
        connecting = ctx.connection is None and ctx.execution_context is None
        typed = classify_database_error(
            name,
            url,
            masked,
            ctx.original_exception,
            established=not connecting,
            is_disconnect=ctx.is_disconnect,
            secrets=secrets,
        )
        if typed is not None and not isinstance(typed, DatabaseConnectionError):
            # A full disk or a damaged file, not a connection problem. The caller reports the
            # error itself (one line); logged here at info for the run log only.
            logger.info("%s", typed.message)
            return typed
        if not (connecting or ctx.is_disconnect or typed is not None):
            return None  # an ordinary SQL error (constraint, syntax, lock): leave it alone
        counts = _counts_for(name)
        with counts.lock:
            counts.connection_errors += 1
        metrics.DB_CONNECTION_ERRORS.labels(database=name).inc()
        reason = mask_text(
            f"{type(ctx.original_exception).__name__}: {ctx.original_exception}".strip(), secrets
        )
        logger.warning("database %r: connection error on %s: %s", name, masked, reason)
        if not connecting:
            # Lost mid-query: the pool has discarded the connection; the next use gets a new one.
            return typed or DatabaseConnectionLostError(name, masked, reason)
        return DatabaseConnectionError(name, masked, reason, hint=_refused_hint(reason))

    observer.refresh(engine.pool)


def _refused_hint(reason: str) -> str | None:
    if too_many_connections(reason):
        return (
            "The server refused a new connection: its connection limit is reached. Lower the "
            "Dagster concurrency pool 'database' limit or pool_size/max_overflow so that steps x "
            "connections per step stays under the limit (docs/ops/scaling.md)."
        )
    return None


# --- health -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthResult:
    """Outcome of one health probe. Messages are masked; never holds a password."""

    database: str
    masked_url: str
    ok: bool
    latency_s: float | None
    error_class: str | None
    error_message: str | None
    pool: PoolStatus
    extra: dict[str, Any] = field(default_factory=dict)
    probe_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _ProbeRun:
    """One probe in its own daemon thread, so a hung server cannot hold the caller.

    Daemon, because a connect that never returns must not keep the interpreter alive; the
    thread ends by itself when the driver's connect timeout fires.
    """

    def __init__(
        self,
        dbs: Databases,
        name: str,
        timeout: float,
        probe: HealthProbe | None,
        *,
        create_missing: bool = True,
    ) -> None:
        self.dbs, self.name, self.timeout, self.probe = dbs, name, timeout, probe
        self.create_missing = create_missing
        self.result: HealthResult | None = None
        self.thread = threading.Thread(target=self._run, name=f"contimg-health-{name}", daemon=True)
        self.started = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()
        self.thread.start()

    def _run(self) -> None:
        missing = None if self.create_missing else self.dbs.missing_sqlite_file(self.name)
        if missing is not None:
            error = DatabaseNotMigratedError(self.name, str(missing), missing_file=True)
            self.result = self.dbs._result(
                self.name, ok=False, latency=None, error=(type(error).__name__, str(error))
            )
            return
        self.result = self.dbs._probe_now(self.name, self.probe, self.started)

    def finish(self) -> HealthResult:
        self.thread.join(max(0.0, self.started + self.timeout - time.perf_counter()))
        result = self.result
        if result is None:
            result = self.dbs._result(
                self.name,
                ok=False,
                latency=None,
                error=("TimeoutError", f"no answer within {self.timeout:g} s"),
            )
        metrics.DB_UP.labels(database=self.name).set(1 if result.ok else 0)
        if result.latency_s is not None:
            metrics.DB_PROBE_LATENCY_SECONDS.labels(database=self.name).set(result.latency_s)
        return result


# --- the plain object -------------------------------------------------------------------------


def _with_password(url: str, password: str | None) -> str:
    """Insert the password into a URL that names a user but carries none."""
    if not password:
        return url
    parsed = make_url(url)
    if parsed.username and parsed.password is None:
        return parsed.set(password=password).render_as_string(hide_password=False)
    return url


class Databases:
    """The five logical databases of one configuration: engines, sessions, status, health."""

    def __init__(
        self,
        urls: Mapping[str, str | None] | None = None,
        *,
        password: str | None = None,
        settings: PoolSettings | None = None,
        require_schema: bool = False,
    ) -> None:
        """`require_schema`: refuse to hand out an engine of a database that is not at head
        (DatabaseNotMigratedError, checked once per process), for code that reads and writes the
        tables; health probes and migrations leave it off, since they must work on any schema."""
        urls = dict(urls or {})
        self.require_schema = require_schema
        for name in urls:
            check_database_name(name)
        self.settings = settings or PoolSettings.from_env()
        self._password = password if password else get(PASSWORD_ENV_VAR)
        self._urls: dict[str, str] = {}
        for name in DATABASE_NAMES:
            given = urls.get(name)
            # A URL from the environment is checked by database_url(); one given in code the
            # same way, in-memory SQLite admitted, a missing directory left to the engine.
            raw = (
                check_database_url(f"{name}_url", given, filesystem=False, in_memory=True)
                if given
                else database_url(name)
            )
            self._urls[name] = _with_password(raw, self._password)
        self._masked = {name: mask_url(url) for name, url in self._urls.items()}
        self._secrets = tuple(
            s for s in {self._password, *(make_url(u).password for u in self._urls.values())} if s
        )

    @classmethod
    def from_env(cls, *, require_schema: bool = False) -> Databases:
        return cls(require_schema=require_schema)

    # -- URLs ----------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return DATABASE_NAMES

    def url(self, name: str) -> str:
        """The full URL, password included: for drivers and Alembic only, never for printing."""
        return self._urls[check_database_name(name)]

    def masked_url(self, name: str) -> str:
        return self._masked[check_database_name(name)]

    def mask(self, text_: str) -> str:
        """Mask every password this configuration knows of in a piece of text."""
        return mask_text(text_, self._secrets)

    # -- synchronous access --------------------------------------------------------------------

    def engine(self, name: str, *, check_schema: bool = True) -> Engine:
        """The process-wide engine of one database; with `require_schema` (and `check_schema`),
        only once the database is known to be at head."""
        if self.require_schema and check_schema:
            self.check_schema(name)
        return self._engine(name)

    def missing_sqlite_file(self, name: str) -> Path | None:
        """The path of a file-backed SQLite database whose file does not exist, else None.

        Connecting to it would create an empty file: callers that must not write check first.
        """
        path = sqlite_path(self.url(name))
        return path if path is not None and not path.is_file() else None

    def check_schema(self, name: str) -> None:
        """Raise DatabaseNotMigratedError unless the database is at its migrations' head.

        Cheap: one read of the version table per process and database, remembered on success.
        A missing SQLite file is reported without creating it (nor its directory).
        """
        key = (name, self.url(name))
        with _verified_lock:
            if key in _verified:
                return
        missing = self.missing_sqlite_file(name)
        if missing is not None:
            raise DatabaseNotMigratedError(name, str(missing), missing_file=True)
        path = sqlite_path(self.url(name))
        with self._engine(name).connect() as conn:
            current, head = _schema_state(name, conn)
            emptied = emptied_sqlite(name, path, conn) if path and current is None else None
        if emptied is not None:
            raise emptied
        if current != head:
            raise DatabaseNotMigratedError(name, self._masked[name], current=current, head=head)
        with _verified_lock:
            _verified.add(key)

    def _engine(self, name: str) -> Engine:
        url = self.url(name)
        masked = self._masked[name]
        try:
            return get_engine(
                url,
                self.settings,
                name=name,
                poolclass=ObservedQueuePool,
                configure=lambda eng: _instrument(name, eng, masked, self._secrets, gauges=True),
            )
        except OSError as exc:
            # A SQLite URL whose directory cannot be created (e.g. a path under a regular file).
            raise DatabaseConnectionError(name, masked, self.mask(str(exc))) from exc

    def connect(self, name: str) -> Connection:
        """A pooled connection, to use as `with db.connect(name) as conn:`; commit yourself
        (`conn.commit()`), else it rolls back when returned to the pool."""
        return self.engine(name).connect()

    def begin(self, name: str) -> AbstractContextManager[Connection]:
        """`with db.begin(name) as conn:` a transaction committed at the end of the block
        (rolled back on error)."""
        return self.engine(name).begin()

    @contextmanager
    def session(self, name: str, **kwargs: Any) -> Iterator[Session]:
        """An ORM session; commit explicitly. Closed (and its connection returned) at the end."""
        with Session(self.engine(name), **kwargs) as session:
            yield session

    def pool_status(self, name: str) -> PoolStatus:
        return _snapshot(name, self._engine(name).pool)

    def _pool_status_or_empty(self, name: str) -> PoolStatus:
        """For health results: a database whose engine cannot even be built has no pool (nor
        has a SQLite file that does not exist: building its engine would create its directory)."""
        try:
            if self.missing_sqlite_file(name) is not None:
                raise DatabaseConnectionError(name, self._masked[name], "no file")
            return self.pool_status(name)
        except DatabaseConnectionError:
            counts = _counts_for(name)
            with counts.lock:
                exhausted, errors = counts.exhausted, counts.connection_errors
            return PoolStatus(name, "unavailable", 0, 0, 0, 0, exhausted, errors)

    # -- asyncio -------------------------------------------------------------------------------

    @asynccontextmanager
    async def async_engine(self, name: str) -> AsyncIterator[AsyncEngine]:
        """An async engine with this configuration, disposed when the block ends.

        Pooled asyncio connections belong to the event loop that opened them (and aiosqlite
        keeps a non-daemon thread per connection), so an async engine lives for one block in one
        loop instead of in the per-process cache; open it around a batch of work, not per query.
        """
        if self.require_schema:
            self.check_schema(name)
        url = self.url(name)
        engine = build_async_engine(url, self.settings, poolclass=ObservedAsyncQueuePool)
        _instrument(name, engine.sync_engine, mask_url(url), self._secrets, gauges=False)
        try:
            yield engine
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def async_session(self, name: str, **kwargs: Any) -> AsyncIterator[AsyncSession]:
        """An async ORM session over a block-scoped async engine (see async_engine)."""
        async with (
            self.async_engine(name) as engine,
            async_sessionmaker(engine, **kwargs)() as session,
        ):
            yield session

    # -- health --------------------------------------------------------------------------------

    def health(
        self,
        name: str,
        *,
        timeout: float | None = None,
        probe: HealthProbe | None = None,
        create_missing: bool = True,
    ) -> HealthResult:
        """Probe one database (`SELECT 1`, then `probe` if given) within `timeout` seconds.

        `create_missing=False`: a SQLite file that does not exist is reported down (not created).
        """
        check_database_name(name)
        run = _ProbeRun(
            self,
            name,
            timeout or self.settings.health_timeout,
            probe,
            create_missing=create_missing,
        )
        run.start()
        return run.finish()

    def health_all(
        self,
        *,
        timeout: float | None = None,
        probe: HealthProbe | None = None,
        names: tuple[str, ...] | None = None,
        create_missing: bool = True,
    ) -> dict[str, HealthResult]:
        """Probe every database concurrently; each has its own timeout, none waits for another.

        `create_missing=False` as in `health`: for read-only callers such as `contimg health`.
        """
        runs = [
            _ProbeRun(
                self,
                name,
                timeout or self.settings.health_timeout,
                probe,
                create_missing=create_missing,
            )
            for name in (names or DATABASE_NAMES)
        ]
        for run in runs:
            run.start()
        return {run.name: run.finish() for run in runs}

    def _result(
        self,
        name: str,
        *,
        ok: bool,
        latency: float | None,
        error: tuple[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        probe_error: str | None = None,
    ) -> HealthResult:
        return HealthResult(
            database=name,
            masked_url=self.masked_url(name),
            ok=ok,
            latency_s=latency,
            error_class=error[0] if error else None,
            error_message=self.mask(error[1]) if error else None,
            pool=self._pool_status_or_empty(name),
            extra=dict(extra or {}),
            probe_error=probe_error,
        )

    def _probe_now(self, name: str, probe: HealthProbe | None, started: float) -> HealthResult:
        try:
            with self._engine(name).connect() as conn:
                conn.execute(text("SELECT 1")).scalar_one()
                latency = time.perf_counter() - started
                path = sqlite_path(self.url(name))
                emptied = emptied_sqlite(name, path, conn) if path is not None else None
                if emptied is not None:
                    # Answers SELECT 1 like an empty database, but its catalogue is gone.
                    raise emptied
                extra: Mapping[str, Any] = {}
                probe_error = None
                if probe is not None:
                    try:
                        extra = probe(name, conn)
                    except (sa_exc.SQLAlchemyError, ContimgError, OSError) as exc:
                        probe_error = self.mask(f"{type(exc).__name__}: {exc}")
        except (sa_exc.SQLAlchemyError, ContimgError, OSError) as exc:
            return self._result(
                name,
                ok=False,
                latency=None,
                error=(type(exc).__name__, str(exc)),
            )
        except Exception as exc:  # noqa: BLE001
            # This runs in a worker thread: an unexpected error would otherwise vanish into
            # threading.excepthook and the caller would report a misleading timeout. It is
            # recorded (masked) in the result, which reports the database as unhealthy.
            logger.error(
                "database %r: health probe failed unexpectedly: %s",
                name,
                self.mask(f"{type(exc).__name__}: {exc}"),
            )
            return self._result(name, ok=False, latency=None, error=(type(exc).__name__, str(exc)))
        return self._result(name, ok=True, latency=latency, extra=extra, probe_error=probe_error)


# --- the Dagster resource ---------------------------------------------------------------------
