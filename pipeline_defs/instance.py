"""Where the Dagster instance lives for contimg, and how it is created on first use."""

from __future__ import annotations

import os
import shutil
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


class InstanceStorageError(ContimgError):
    """The Dagster instance's storage (dagster.yaml) could not be opened or written."""

    def __init__(self, home: Path, reason: str) -> None:
        self.home = home
        super().__init__(
            f"cannot open the Dagster storage of {home / 'dagster.yaml'}: {reason}",
            hint="Set the variables it names (DAGSTER_PG_* for the production profile), check "
            "that the server is up, and run `contimg init-home` again.",
        )


def ensure_dagster_home(template: str = "embedded") -> Path:
    """Create DAGSTER_HOME with our dagster.yaml if missing; export it for child processes.

    An existing dagster.yaml is never overwritten: operators own it after the first run.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(TEMPLATES / f"{template}.yaml", config)
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
    Returns pool -> limit now in storage (None: no limit).
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
        with dg.DagsterInstance.from_config(str(home)) as instance:
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
