"""Where the Dagster instance lives for contimg, and how it is created on first use.

Order on a fresh DAGSTER_HOME: `contimg init-home` first, then anything that opens the instance
(`dagster asset materialize`, `dg dev`, the daemon, `contimg demo`). Dagster's SQLite storages
create their tables and stamp `alembic_version` on first open without any guard
(`SqliteRunStorage.from_local`: `create_all` then `stamp_alembic_rev`), so two processes opening
a fresh home at once make one of them die in instance creation (`UNIQUE constraint failed:
alembic_version.version_num`, `table runs already exists`). `contimg init-home` (and `contimg
demo`, which creates the home itself) therefore open the instance once under an exclusive file
lock (`STORAGE_LOCK` in DAGSTER_HOME), so that every later process finds the storage made and
only reads its revision. `make ui` and `make demo` run `contimg init-home` first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from resources.errors import ContimgError
from resources.settings import dagster_home

TEMPLATES = Path(__file__).parent / "instance_templates"
#: The Dagster concurrency pools contimg's steps declare (`pool="database"`, assets/partitions.py).
POOLS = ("database",)
#: The dagster.yaml templates `contimg init-home --profile` knows (docs/ops/scaling.md).
PROFILES = ("embedded", "production")
#: Files written next to dagster.yaml for a profile (never overwritten either).
PROFILE_EXTRAS = {"production": ("celery_worker.yaml",)}
#: The lock file in DAGSTER_HOME that serialises the creation of the instance's storage.
STORAGE_LOCK = ".contimg-storage.lock"


class DagsterHomeNotWritableError(ContimgError):
    """DAGSTER_HOME cannot be created or written: every run would fail opening its storage
    (`sqlite3.OperationalError: unable to open database file`, which names no directory)."""

    def __init__(self, home: Path, reason: str) -> None:
        self.home = home
        super().__init__(
            f"DAGSTER_HOME {home} is not writable ({reason})",
            hint="Point DAGSTER_HOME at a directory this user can write, or fix its "
            "permissions, then run `contimg init-home`.",
        )


def check_writable(home: Path) -> None:
    """Create `home` if needed and prove it writable by creating and removing a file in it.

    A real write, not os.access(): root passes os.access() on a read-only mount, and a
    directory can be writable by mode but on a read-only or full filesystem.
    """
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".contimg-write-test-", dir=home)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DagsterHomeNotWritableError(home, exc.strerror or type(exc).__name__) from exc


def dagster_home_problem(home: Path | None = None) -> str | None:
    """The one line `contimg health` prints when DAGSTER_HOME is unusable (None: it is fine).

    Read-only as far as it can be: a missing home is not created (init-home does that), only
    reported when its nearest existing parent cannot be written either.
    """
    home = home if home is not None else dagster_home()
    target = home
    while not target.exists() and target.parent != target:
        target = target.parent
    if not target.is_dir():
        return f"DAGSTER_HOME {home} is not writable ({target} is not a directory)"
    try:
        fd, probe = tempfile.mkstemp(prefix=".contimg-write-test-", dir=target)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"DAGSTER_HOME {home} is not writable ({exc.strerror or type(exc).__name__})"
    return None


@contextlib.contextmanager
def storage_lock(home: Path) -> Iterator[None]:
    """Hold the exclusive lock on DAGSTER_HOME's storage creation (blocks until it is free)."""
    with open(home / STORAGE_LOCK, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class InstanceStorageError(ContimgError):
    """The Dagster instance's storage (dagster.yaml) could not be opened or written."""

    def __init__(self, home: Path, reason: str) -> None:
        self.home = home
        super().__init__(
            f"cannot open the Dagster storage of {home / 'dagster.yaml'}: {reason}",
            hint="Set the variables it names (DAGSTER_PG_* for the production profile), check "
            "that the server is up, and run `contimg init-home` again.",
        )


#: Replaced by the home's absolute path when a template is written (`render_template`).
HOME_PLACEHOLDER = "@DAGSTER_HOME@"


def render_template(template: str, home: Path) -> str:
    """The text of instance template `template` for the Dagster home `home`.

    The embedded event log names its directory (`pipeline_defs/event_log.py`): the placeholder
    becomes the home's absolute path, as a quoted YAML string.
    """
    text = (TEMPLATES / f"{template}.yaml").read_text()
    return text.replace(f'"{HOME_PLACEHOLDER}"', json.dumps(str(Path(home).resolve())))


def ensure_dagster_home(template: str = "embedded") -> Path:
    """Create DAGSTER_HOME with our dagster.yaml if missing; export it for child processes.

    An existing dagster.yaml is never overwritten: operators own it after the first run. Raises
    DagsterHomeNotWritableError (one line naming the directory) when it cannot be written.
    """
    home = dagster_home()
    check_writable(home)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(render_template(template, home))
    for extra in PROFILE_EXTRAS.get(template, ()):
        if not (home / extra).exists():
            shutil.copyfile(TEMPLATES / extra, home / extra)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def apply_pool_limits(home: Path) -> dict[str, int | None]:
    """Create the instance's storage and write its pool limits once, before any run starts.

    Dagster writes a pool's `default_limit` into its storage lazily, when the first step claims a
    slot, and its insert-then-update is not safe when several runs do it at once on PostgreSQL
    (the losing transaction is aborted: `InFailedSqlTransaction` on `concurrency_limits`, and the
    run fails outside any step). Applying the limits here, from `contimg init-home`, makes every
    later claim a plain read. Run `contimg init-home` again after changing `default_limit`.
    Opening the instance here, under `storage_lock`, is also what creates its storage once
    (the module docstring says why that matters). Returns pool -> limit now in storage (None:
    no limit).
    """
    import dagster as dg
    from sqlalchemy.exc import SQLAlchemyError

    failures: tuple[type[BaseException], ...] = (dg.DagsterError, SQLAlchemyError)
    try:
        from dagster_postgres.utils import DagsterPostgresException

        failures += (DagsterPostgresException,)
    except ImportError:  # the embedded profile needs no dagster-postgres
        pass
    limits: dict[str, int | None] = {}
    try:
        with storage_lock(home), dg.DagsterInstance.from_config(str(home)) as instance:
            storage = instance.event_log_storage
            if not storage.supports_global_concurrency_limits:
                return limits
            default = instance.global_op_concurrency_default_limit
            stored = {limit.name: limit for limit in storage.get_pool_limits()}
            for pool in POOLS:
                current = stored.get(pool)
                if current is not None and current.from_default and current.limit != default:
                    # Dagster's own update of an existing default limit fails on PostgreSQL
                    # (it retries an insert inside one transaction): drop it and insert anew.
                    storage.delete_concurrency_limit(pool)
                    current = None
                if current is None and default is not None:
                    storage.initialize_concurrency_limit_to_default(pool)
                limits[pool] = default if current is None else current.limit
    except failures as exc:
        raise InstanceStorageError(home, _first_line(exc)) from exc
    return limits


def _first_line(exc: BaseException) -> str:
    """The line of a Dagster error that says what is wrong (its config errors run long)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "environment variable" in line:
            return line
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
