"""The one implementation of schema migrations, used by `contimg db ...` and the Dagster ops.

Every function takes a logical database name (one of `resources.settings.DATABASE_NAMES`) and,
where it talks to a database, a URL or Engine (default: `database_url(name)` read at call time).
Results are typed dataclasses with `to_dict()` for JSON output and Dagster metadata.

Guarantees:
- The Alembic `Config` is built from this package's path, never from a repo-root ini.
- Each database keeps its revision in its own version table `alembic_version_<name>`.
- A run applies all its revisions in one transaction (PostgreSQL natively; SQLite through an
  engine that issues real BEGIN/COMMIT), so a failing revision leaves the database at the
  revision it had before the run. If that ever did not hold on SQLite, the pre-migration
  backup is restored and the error says so.
- Before applying revisions to a file-backed SQLite database, an online backup (SQLite backup
  API) is written next to it; the newest `keep_backups` (default 5, CONTIMG_DB_BACKUP_KEEP) stay.
- Histories are linear (one head per database); `contimg db check` fails on more than one head.
- A migration that leaves a SQLite file at a revision records it in `<file>.migrated`. A file
  that was migrated before (that record, or a backup) but holds no table now (0 bytes, tables
  gone) is damaged, not new: `upgrade` refuses it (DatabaseDamagedError) unless told
  `recreate=True` (`contimg db upgrade --recreate`).
- Its engines raise the typed errors of `resources.database.classify_database_error`: a full
  disk, a damaged file, a connection lost mid-query.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Column, Constraint, Index, Table, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from resources.database import (
    SQLITE_BACKUP_MARKER,
    emptied_sqlite,
    install_error_translation,
    install_schema_reader,
    sqlite_backups_of,
    sqlite_migrated_record,
)
from resources.engines import build_engine, is_sqlite, sqlite_path
from resources.errors import (
    ContimgError,
    DatabaseConnectionError,
    DatabaseDamagedError,
    MigrationError,
)
from resources.metrics import MIGRATION_RUNS
from resources.secrets import mask_text, mask_url
from resources.settings import (
    PoolSettings,
    check_database_name,
    database_url,
    env_int,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent
BACKUP_KEEP_ENV = "CONTIMG_DB_BACKUP_KEEP"
BACKUP_MARKER = SQLITE_BACKUP_MARKER

Bind = str | Engine | None

# Alembic keeps the running migration's context in module-level proxies (`alembic.context`,
# `alembic.op`), so two commands in one process must not overlap; across processes the
# advisory lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) serialises them.
_ALEMBIC_LOCK = threading.RLock()


# --- naming and configuration -------------------------------------------------------------------


def version_table_name(name: str) -> str:
    return f"alembic_version_{check_database_name(name)}"


def versions_dir(name: str) -> Path:
    return MIGRATIONS_DIR / check_database_name(name) / "versions"


def alembic_config(name: str, *, url: str | None = None) -> Config:
    """An Alembic Config for one database, built in code from this package's location."""
    check_database_name(name)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("version_locations", str(versions_dir(name)))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "40")
    cfg.set_main_option("contimg_database", name)
    cfg.attributes["database_name"] = name
    if url is not None:
        cfg.attributes["url"] = url
    return cfg


def database_name_from_config(config: Config) -> str:
    """Which logical database an env.py run is for (see env.py's docstring)."""
    name = (
        config.attributes.get("database_name")
        or config.get_main_option("contimg_database")
        or config.config_ini_section
    )
    return check_database_name(str(name))


def include_name_for(name: str) -> Callable[[str | None, str, Any], bool]:
    """Autogenerate filter: only this database's tables.

    Several logical databases (and Dagster's storage) may share one PostgreSQL database, so a
    table this MetaData does not define is someone else's and must not show up as "removed".
    Consequence: dropping a whole table from the models is not detected; write that revision
    by hand (docs/ops/database-migrations.md).
    """
    from resources.models import METADATA

    tables = METADATA[name].tables

    def include_name(obj_name: str | None, type_: str, _parents: Any) -> bool:
        if type_ == "table":
            return obj_name in tables
        return True

    return include_name


def configure_options(
    config: Config, name: str, *, online: bool, url: str | None
) -> dict[str, Any]:
    """Keyword arguments for `context.configure` shared by online and offline runs."""
    from resources.models import METADATA

    options: dict[str, Any] = {
        "target_metadata": METADATA[name],
        "version_table": version_table_name(name),
        "include_name": include_name_for(name),
        "compare_type": True,
        "render_as_batch": True,
        "transaction_per_migration": False,
    }
    on_apply = config.attributes.get("on_version_apply")
    if on_apply is not None:
        options["on_version_apply"] = on_apply
    if config.attributes.get("refuse_empty_autogenerate"):
        options["process_revision_directives"] = _refuse_empty(config)
    return options


def _refuse_empty(config: Config) -> Callable[[Any, Any, list[Any]], None]:
    def process(_context: Any, _revision: Any, directives: list[Any]) -> None:
        if directives and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            config.attributes["autogenerate_was_empty"] = True

    return process


def lock_for_migration(connection: Connection, name: str) -> None:
    """Serialise concurrent migration runs of one database (PostgreSQL advisory lock).

    Taken inside the migration transaction, before Alembic reads the current revision, so a
    second runner waits and then finds the work done. SQLite's BEGIN IMMEDIATE does the same.
    """
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(f"contimg-migrate:{name}".encode())
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")


def sqlite_foreign_key_violations(connection: Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.exec_driver_sql("PRAGMA foreign_key_check")]


def migration_engine(url: str, name: str | None = None) -> Engine:
    """An unpooled engine for migrations; on SQLite with real transactions around DDL.

    pysqlite autocommits DDL; the documented SQLAlchemy recipe (isolation_level=None plus an
    explicit BEGIN) makes CREATE/ALTER/DROP part of the transaction. Foreign keys are switched
    off on these connections because batch mode copies, drops and renames tables, and dropping
    a parent table with foreign keys on would cascade-delete its children; env.py runs
    PRAGMA foreign_key_check before committing instead.
    """
    engine = build_engine(url, PoolSettings(), poolclass=NullPool)
    if name is not None:
        install_error_translation(name, engine, secrets=_password(url))
    if is_sqlite(url):

        def on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA foreign_keys = OFF")

        def on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", on_begin)
    return engine


def _url(name: str, bind: Bind) -> str:
    if isinstance(bind, Engine):
        return bind.url.render_as_string(hide_password=False)
    return bind if bind is not None else database_url(name)


@contextmanager
def _connect(name: str, engine: Engine) -> Iterator[Connection]:
    """Connect, turning driver errors into DatabaseConnectionError with a masked URL."""
    url = engine.url.render_as_string(hide_password=False)
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        reason = mask_text(str(getattr(exc, "orig", None) or exc), _password(url))
        raise DatabaseConnectionError(name, mask_url(url), reason.strip()) from exc
    try:
        yield conn
    finally:
        conn.close()


def _password(url: str) -> tuple[str, ...]:
    from sqlalchemy.engine import make_url

    password = make_url(url).password
    return (str(password),) if password else ()


# --- revisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionInfo:
    revision: str
    down_revision: str | None
    message: str
    is_head: bool
    path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _script(name: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(name))


def _chain(name: str, script: ScriptDirectory | None = None) -> list[Script]:
    """Revisions from base to head; refuses branched histories (one head per database)."""
    script = script or _script(name)
    heads = script.get_heads()
    if len(heads) > 1:
        raise MigrationError(
            name,
            f"{len(heads)} heads ({', '.join(sorted(heads))}); histories must be linear",
            hint="Rebase the newer revision onto the other (edit its down_revision).",
        )
    revisions = list(script.walk_revisions("base", "heads"))
    revisions.reverse()
    return revisions


def head_revision(name: str) -> str | None:
    chain = _chain(name)
    return chain[-1].revision if chain else None


def history(name: str) -> list[RevisionInfo]:
    """Revisions of one database, oldest first."""
    chain = _chain(name)
    head = chain[-1].revision if chain else None
    return [
        RevisionInfo(
            revision=s.revision,
            down_revision=s.down_revision if isinstance(s.down_revision, str) else None,
            message=" ".join((s.doc or "").split()),
            is_head=s.revision == head,
            path=str(s.path),
        )
        for s in chain
    ]


def current_revision(conn_or_engine: Connection | Engine, name: str) -> str | None:
    """The revision recorded in `alembic_version_<name>`; None for an empty database."""
    opts = {"version_table": version_table_name(name)}
    if isinstance(conn_or_engine, Engine):
        with _connect(name, conn_or_engine) as conn:
            return MigrationContext.configure(conn, opts=opts).get_current_revision()
    return MigrationContext.configure(conn_or_engine, opts=opts).get_current_revision()


def _resolve(name: str, chain: list[Script], current: str | None, target: str) -> str | None:
    """A concrete revision id (None = base) for head/base/relative/id-or-prefix targets."""
    ids = [s.revision for s in chain]
    if target in ("head", "heads"):
        return ids[-1] if ids else None
    if target == "base":
        return None
    relative = re.fullmatch(r"([+-])(\d+)", target)
    if relative:
        position = ids.index(current) if current in ids else -1
        step = int(relative[2]) * (1 if relative[1] == "+" else -1)
        new = position + step
        if new < -1 or new >= len(ids):
            raise MigrationError(
                name, f"relative target {target} goes beyond the history", revision=current
            )
        return ids[new] if new >= 0 else None
    matches = [i for i in ids if i.startswith(target)]
    if target in ids:
        return target
    if len(matches) == 1:
        return matches[0]
    raise MigrationError(
        name,
        f"unknown or ambiguous revision {target!r}",
        hint=f"Known revisions: {', '.join(ids) or 'none'}; `contimg db history --db {name}`.",
    )


def _plan(
    name: str, chain: list[Script], current: str | None, target: str | None, direction: str
) -> list[str]:
    """Revision ids to apply (upgrade, in order) or to undo (downgrade, newest first)."""
    ids = [s.revision for s in chain]
    if current is not None and current not in ids:
        raise MigrationError(
            name,
            f"the database is at revision {current}, which this code does not know",
            revision=current,
            hint="The database was migrated by a newer contimg; deploy that version or "
            "restore a backup.",
        )
    cur = ids.index(current) if current is not None else -1
    tgt = ids.index(target) if target is not None else -1
    if direction == "upgrade":
        if tgt < cur:
            raise MigrationError(
                name,
                f"target {target or 'base'} is below the current revision; use downgrade",
                revision=current,
            )
        return ids[cur + 1 : tgt + 1]
    if tgt > cur:
        raise MigrationError(
            name,
            f"target {target} is above the current revision; use upgrade",
            revision=current,
        )
    return list(reversed(ids[tgt + 1 : cur + 1]))


# --- status and check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseStatus:
    database: str
    url: str  # masked
    current: str | None
    head: str | None
    pending: tuple[str, ...]
    at_head: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pending"] = list(self.pending)
        return out


def _read_engine(url: str, name: str | None = None) -> Engine:
    engine = build_engine(url, PoolSettings(), poolclass=NullPool)
    if name is not None:
        install_error_translation(name, engine, secrets=_password(url))
    return engine


def _sqlite_missing(url: str) -> bool:
    path = sqlite_path(url)
    return path is not None and not path.exists()


def status(name: str, url: Bind = None) -> DatabaseStatus:
    """Where one database stands; a missing SQLite file counts as empty (and is not created)."""
    check_database_name(name)
    url_s = _url(name, url)
    chain = _chain(name)
    head = chain[-1].revision if chain else None
    if _sqlite_missing(url_s):
        current = None
    else:
        engine = url if isinstance(url, Engine) else _read_engine(url_s, name)
        try:
            current = current_revision(engine, name)
            if current is None:
                refuse_emptied(name, url_s, engine)
        finally:
            if engine is not url:
                engine.dispose()
    pending = tuple(_plan(name, chain, current, head, "upgrade"))
    return DatabaseStatus(
        database=name,
        url=mask_url(url_s),
        current=current,
        head=head,
        pending=pending,
        at_head=current == head,
    )


def connection_status(name: str, conn: Connection) -> DatabaseStatus:
    """`status()` on a connection the caller already holds (e.g. inside a health probe's timeout).

    Same revision reading and pending plan as `status()`; raises MigrationError when the database
    is at a revision this code does not know.
    """
    check_database_name(name)
    chain = _chain(name)
    head = chain[-1].revision if chain else None
    current = current_revision(conn, name)
    pending = tuple(_plan(name, chain, current, head, "upgrade"))
    return DatabaseStatus(
        database=name,
        url=mask_url(conn.engine.url.render_as_string(hide_password=False)),
        current=current,
        head=head,
        pending=pending,
        at_head=current == head,
    )


def check(name: str, url: Bind = None) -> list[str]:
    """Readable differences between the models and the database (Alembic autogenerate's view).

    Empty when they agree. Run it against a database at head: below head, the pending
    revisions' changes show up as differences too.
    """
    from resources.models import METADATA

    check_database_name(name)
    url_s = _url(name, url)
    engine = url if isinstance(url, Engine) else _read_engine(url_s, name)
    try:
        with _connect(name, engine) as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": include_name_for(name),
                    "version_table": version_table_name(name),
                    "target_metadata": METADATA[name],
                },
            )
            diffs = compare_metadata(context, METADATA[name])
    finally:
        if engine is not url:
            engine.dispose()
    lines: list[str] = []
    for diff in diffs:
        if isinstance(diff, list):
            lines.extend(_describe(d) for d in diff)
        else:
            lines.append(_describe(diff))
    return lines


def _describe(diff: tuple[Any, ...]) -> str:
    """One sentence per autogenerate difference: what the models say vs the database."""
    kind = diff[0]
    models_only = "is in the models but not in the database"
    db_only = "is in the database but not in the models"
    if kind in ("add_table", "remove_table"):
        table: Table = diff[1]
        return f"table {table.name} {models_only if kind == 'add_table' else db_only}"
    if kind in ("add_column", "remove_column"):
        column: Column[Any] = diff[3]
        where = models_only if kind == "add_column" else db_only
        return f"column {diff[2]}.{column.name} ({column.type}) {where}"
    if kind in ("add_index", "remove_index"):
        index: Index = diff[1]
        cols = ", ".join(str(getattr(c, "name", c)) for c in index.expressions)
        where = models_only if kind == "add_index" else db_only
        table_name = index.table.name if index.table is not None else "?"
        return f"index {index.name} on {table_name}({cols}) {where}"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint: Constraint = diff[1]
        where = models_only if kind.startswith("add") else db_only
        table_name = constraint.table.name if constraint.table is not None else "?"
        label = "foreign key" if kind.endswith("fk") else "constraint"
        return f"{label} {constraint.name} on {table_name} {where}"
    if kind == "modify_type":
        _, _schema, tname, cname, _info, db_type, model_type = diff
        return (
            f"column {tname}.{cname}: type is {db_type} in the database, {model_type} in the models"
        )
    if kind == "modify_nullable":
        _, _schema, tname, cname, _info, db_value, model_value = diff

        def word(v: bool) -> str:
            return "nullable" if v else "NOT NULL"

        return (
            f"column {tname}.{cname}: {word(db_value)} in the database, "
            f"{word(model_value)} in the models"
        )
    if kind == "modify_default":
        _, _schema, tname, cname, _info, db_value, model_value = diff
        return (
            f"column {tname}.{cname}: server default {db_value!r} in the database, "
            f"{model_value!r} in the models"
        )
    if kind == "modify_comment":
        _, _schema, tname, cname, _info, db_value, model_value = diff
        return f"column {tname}.{cname}: comment {db_value!r} vs {model_value!r} in the models"
    return f"{kind}: {diff[1:]}"


# --- backups ------------------------------------------------------------------------------------


def backup_keep() -> int:
    return env_int(BACKUP_KEEP_ENV)


def sqlite_backups(url: str) -> list[Path]:
    """Backups of a SQLite database, oldest first (their names sort by time)."""
    path = sqlite_path(url)
    if path is None:
        return []
    return sqlite_backups_of(path)


def refuse_emptied(name: str, url: str, engine: Engine) -> None:
    """Raise DatabaseDamagedError for a SQLite file migrated before that holds no table now."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return
    with _connect(name, engine) as conn:
        emptied = emptied_sqlite(name, path, conn)
    if emptied is not None:
        raise emptied


def record_migration(url: str, revision: str | None) -> None:
    """Write (or, at base, remove) `<file>.migrated`: the record that this file holds a schema.

    It is what tells an emptied file (0 bytes, tables lost) from a new one, so `db upgrade`
    refuses to recreate a catalogue silently. PostgreSQL and in-memory databases have none.
    """
    path = sqlite_path(url)
    if path is None:
        return
    record = sqlite_migrated_record(path)
    if revision is None:
        record.unlink(missing_ok=True)
        return
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record.write_text(json.dumps({"revision": revision, "at": stamp}) + "\n")


def backup_sqlite(url: str, label: str, *, keep: int | None = None) -> Path | None:
    """Online backup of a file-backed SQLite database next to it; prunes older ones.

    Uses the SQLite backup API, so the copy is consistent even with WAL and concurrent readers.
    Returns None for non-SQLite URLs and for a database file that does not exist yet.
    """
    path = sqlite_path(url)
    if path is None or not path.exists():
        return None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}{BACKUP_MARKER}{stamp}-{label}")
    _sqlite_copy(path, target)
    existing = sqlite_backups(url)
    for old in existing[: max(0, len(existing) - (keep or backup_keep()))]:
        old.unlink(missing_ok=True)
    return target


def restore_sqlite_backup(url: str, backup: Path, *, name: str = "?") -> None:
    """Copy a backup over the live database with the backup API (stop writers first)."""
    path = sqlite_path(url)
    if path is None:
        raise MigrationError(
            name,
            f"{mask_url(url)} is not a file-backed SQLite database",
            hint="For PostgreSQL restore with pg_restore (docs/ops/database-migrations.md).",
        )
    if not backup.is_file():
        raise MigrationError(name, f"backup {backup} does not exist")
    try:
        _sqlite_copy(backup, path)
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            raise
        _replace_damaged(backup, path)


def _replace_damaged(backup: Path, path: Path) -> None:
    """Put a copy of `backup` in place of a damaged file the backup API cannot write into.

    The copy is made beside it and renamed over it (atomic); the damaged file's WAL and shared
    memory files go too, or SQLite would replay the damaged file's journal into the restored one.
    """
    staging = path.with_name(f"{path.name}.restoring")
    staging.unlink(missing_ok=True)
    _sqlite_copy(backup, staging)
    for suffix in ("-wal", "-shm"):
        path.with_name(f"{path.name}{suffix}").unlink(missing_ok=True)
    staging.replace(path)


def _sqlite_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(str(source), timeout=30)
    try:
        dst = sqlite3.connect(str(target), timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


# --- upgrade and downgrade ------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationResult:
    database: str
    url: str  # masked
    direction: str  # "upgrade" | "downgrade"
    target: str | None
    before: str | None
    after: str | None
    applied: tuple[str, ...]  # revisions applied (upgrade) or undone (downgrade), in order
    duration_s: float
    backup_path: str | None
    dry_run: bool
    sql: str | None  # dry run: the SQL that would run (Alembic offline mode)
    message: str

    @property
    def changed(self) -> bool:
        return bool(self.applied) and not self.dry_run

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["applied"] = list(self.applied)
        return out


def upgrade(
    name: str,
    url: Bind = None,
    target: str = "head",
    *,
    backup: bool = True,
    dry_run: bool = False,
    keep_backups: int | None = None,
    recreate: bool = False,
) -> MigrationResult:
    """Bring one database up to `target` (default head). A database at head is left alone.

    A SQLite file that was migrated before and has lost its tables is refused
    (DatabaseDamagedError: restore a backup) unless `recreate`, which builds an empty schema in
    it (the file's old content is gone either way).
    """
    return _migrate(name, url, target, "upgrade", backup, dry_run, keep_backups, recreate)


def downgrade(
    name: str,
    url: Bind,
    target: str,
    *,
    backup: bool = True,
    dry_run: bool = False,
    keep_backups: int | None = None,
) -> MigrationResult:
    """Undo revisions down to `target` (a revision id or prefix, `-N`, or `base`)."""
    return _migrate(name, url, target, "downgrade", backup, dry_run, keep_backups)


def _migrate(
    name: str,
    bind: Bind,
    target: str,
    direction: str,
    backup: bool,
    dry_run: bool,
    keep_backups: int | None,
    recreate: bool = False,
) -> MigrationResult:
    check_database_name(name)
    started = time.perf_counter()
    url = _url(name, bind)
    masked = mask_url(url)
    try:
        result = _migrate_inner(
            name, url, masked, target, direction, backup, dry_run, keep_backups, started, recreate
        )
    except ContimgError:
        MIGRATION_RUNS.labels(name, direction, "failed").inc()
        raise
    outcome = "dry_run" if dry_run else ("applied" if result.applied else "noop")
    MIGRATION_RUNS.labels(name, direction, outcome).inc()
    return result


def _migrate_inner(
    name: str,
    url: str,
    masked: str,
    target: str,
    direction: str,
    backup: bool,
    dry_run: bool,
    keep_backups: int | None,
    started: float,
    recreate: bool = False,
) -> MigrationResult:
    chain = _chain(name)
    engine = migration_engine(url, name)
    try:
        before = None if _sqlite_missing(url) else current_revision(engine, name)
        emptied = False
        if before is None:
            try:
                refuse_emptied(name, url, engine)
            except DatabaseDamagedError as exc:
                if not recreate:
                    raise DatabaseDamagedError(
                        name,
                        exc.path,
                        f"{exc.reason}; not recreating it (use --recreate to build an empty one)",
                        backups=exc.backups,
                        emptied=True,
                    ) from None
                emptied = True
        resolved = _resolve(name, chain, before, target)
        plan = _plan(name, chain, before, resolved, direction)

        def result(**kw: Any) -> MigrationResult:
            base: dict[str, Any] = {
                "database": name,
                "url": masked,
                "direction": direction,
                "target": resolved,
                "before": before,
                "after": before,
                "applied": (),
                "duration_s": time.perf_counter() - started,
                "backup_path": None,
                "dry_run": dry_run,
                "sql": None,
            }
            base.update(kw)
            return MigrationResult(**base)

        if not plan:
            where = before or "base (empty)"
            if before is not None and not dry_run:
                record_migration(url, before)  # installations migrated before the record existed
            return result(message=f"{name}: already at {where}; nothing to do")
        if dry_run:
            sql = _offline_sql(name, url, before, resolved, direction)
            return result(
                applied=tuple(plan),
                sql=sql,
                message=f"{name}: would {direction} {before or 'base'} -> {resolved or 'base'} "
                f"({', '.join(plan)})",
            )
        # No backup of an emptied file: it holds nothing, and it would push a real backup out
        # of the newest `keep` (the one the damaged-file hint points to).
        backup_path = (
            backup_sqlite(url, f"{before or 'base'}", keep=keep_backups)
            if backup and not emptied
            else None
        )
        applied: list[str] = []

        def on_apply(*, step: MigrationInfo, **_kw: Any) -> None:
            applied.append(step.up_revision_id or "")

        cfg = alembic_config(name, url=url)
        cfg.attributes["on_version_apply"] = on_apply
        try:
            with _connect(name, engine) as conn:
                cfg.attributes["connection"] = conn
                with _ALEMBIC_LOCK:
                    if direction == "upgrade":
                        command.upgrade(cfg, resolved or "base")
                    else:
                        command.downgrade(cfg, resolved or "base")
        except DatabaseConnectionError:
            raise
        except Exception as exc:
            # Any error a revision script raises (SQL, Python, our own) must end as a typed
            # MigrationError naming the revision, after making sure the database is back at
            # its previous revision; the original stays chained as the cause.
            failed = plan[len(applied)] if len(applied) < len(plan) else plan[-1]
            raise _failure(name, url, engine, before, failed, backup_path, exc) from exc
        after = current_revision(engine, name)
        record_migration(url, after)
        if not applied:
            # Another run migrated this database while we waited for its lock.
            return result(
                after=after,
                message=f"{name}: already at {after or 'base'} "
                "(applied by a concurrent run); nothing to do",
            )
        return result(
            after=after,
            applied=tuple(applied),
            backup_path=str(backup_path) if backup_path else None,
            message=f"{name}: {direction}d {before or 'base'} -> {after or 'base'} "
            f"({', '.join(applied)})" + (f"; backup {backup_path}" if backup_path else ""),
        )
    finally:
        engine.dispose()


def _failure(
    name: str,
    url: str,
    engine: Engine,
    before: str | None,
    failed: str,
    backup_path: Path | None,
    exc: BaseException,
) -> MigrationError:
    reason = mask_text(f"{type(exc).__name__}: {exc}", _password(url)).strip()
    reason = reason.splitlines()[0] if reason else type(exc).__name__
    try:
        now = current_revision(engine, name)
    except DatabaseConnectionError:
        now = "unknown"
    note = f"the database is still at {before or 'base'}"
    if now != before:
        if backup_path is not None:
            restore_sqlite_backup(url, backup_path, name=name)
            note = f"restored {before or 'base'} from backup {backup_path}"
        else:
            note = f"the database was left at {now}; restore it from your backup"
    return MigrationError(name, f"{reason} ({note})", revision=failed)


def _offline_sql(
    name: str, url: str, before: str | None, target: str | None, direction: str
) -> str:
    buffer = io.StringIO()
    cfg = alembic_config(name, url=url)
    cfg.output_buffer = buffer
    spec = f"{before or 'base'}:{target or 'base'}"
    try:
        with _ALEMBIC_LOCK:
            if direction == "upgrade":
                command.upgrade(cfg, spec, sql=True)
            else:
                command.downgrade(cfg, spec, sql=True)
    except (CommandError, NotImplementedError, SQLAlchemyError) as exc:
        # Offline mode cannot render every operation (e.g. SQLite batch table rebuilds, which
        # need reflection): report the plan without SQL rather than failing the dry run.
        return f"-- SQL not available offline: {mask_text(str(exc))}\n"
    return buffer.getvalue()


# --- new revisions ------------------------------------------------------------------------------


def new_revision(
    name: str, message: str, autogenerate: bool = False, *, url: Bind = None
) -> RevisionInfo:
    """Write a new revision script under migrations/<name>/versions/ and return it.

    Ids are `<name>_<NNNN>` so that histories read in order. With `autogenerate`, the database
    (default: the configured one) must be at head; an empty comparison writes nothing and
    raises MigrationError (models and migrations already agree).
    """
    chain = _chain(name)
    next_number = len(chain) + 1
    rev_id = f"{name}_{next_number:04d}"
    cfg = alembic_config(name)
    if not autogenerate:
        with _ALEMBIC_LOCK:
            command.revision(cfg, message=message, rev_id=rev_id)
        return _find(name, rev_id)
    url_s = _url(name, url)
    state = status(name, url_s)
    if not state.at_head:
        raise MigrationError(
            name,
            f"autogenerate compares against the database, which is at {state.current or 'base'}"
            f", not head {state.head}",
            hint=f"Run `contimg db upgrade --db {name}` first.",
        )
    cfg.attributes["refuse_empty_autogenerate"] = True
    engine = _read_engine(url_s, name)
    try:
        with _connect(name, engine) as conn:
            cfg.attributes["connection"] = conn
            with _ALEMBIC_LOCK:
                command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
            conn.rollback()
    finally:
        engine.dispose()
    if cfg.attributes.get("autogenerate_was_empty"):
        raise MigrationError(
            name, "the models and the migrations agree; no revision written", revision=None
        )
    return _find(name, rev_id)


def _find(name: str, rev_id: str) -> RevisionInfo:
    for info in history(name):
        if info.revision == rev_id:
            return info
    raise MigrationError(name, "the new revision was not found after writing it", revision=rev_id)


# --- the schema check of Databases(require_schema=True) -------------------------------------------


def schema_state(name: str, conn: Connection) -> tuple[str | None, str | None]:
    """(current, head) of one database on a connection the caller holds.

    Installed into `resources.database` below, so that a run or a command refuses a database that
    is not at head with DatabaseNotMigratedError instead of failing on `no such table`; a database
    at a revision this code does not know raises MigrationError (`connection_status`).
    """
    state = connection_status(name, conn)
    return state.current, state.head


install_schema_reader(schema_state)
