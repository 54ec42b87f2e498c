"""Database maintenance from the Dagster UI: `migrate_databases`, `rollback_database`,
`database_status` (docs/ops/health-checks.md shows the Launchpad config of each).

Thin wiring: migrations go through `migrations.runner` (the code behind `contimg db ...`), the
status report through `pipeline_defs.monitoring.health` (the code behind `database_health_sensor`).
Every op holds database connections, so each declares the Dagster concurrency pool `database`
and uses the `Database` resource under the key `database`.

No `from __future__ import annotations` here: Dagster inspects op signatures at import.
"""

from typing import Any

import dagster as dg
from alembic.util.exc import CommandError
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from migrations import runner
from pipeline_defs.monitoring import health as health_monitor
from resources.database import Databases
from resources.errors import ConfigurationError, ContimgError
from resources.secrets import mask_text
from resources.settings import DATABASE_NAMES

POOL = "database"
MIGRATION_ERRORS = (ContimgError, SQLAlchemyError, CommandError, OSError)


def _as_failure(exc: BaseException, database: str, action: str) -> dg.Failure:
    """A Dagster failure whose description is the (masked) one-line reason the UI shows."""
    reason = mask_text(" ".join(str(exc).split())) or type(exc).__name__
    return dg.Failure(
        description=f"{action} of database {database!r} failed: {reason}",
        metadata={"database": database, "error_class": type(exc).__name__},
    )


def _result_metadata(result: runner.MigrationResult) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "database": result.database,
        "url": result.url,
        "direction": result.direction,
        "dry_run": result.dry_run,
        "before": result.before or "base",
        "after": result.after or "base",
        "target": result.target or "base",
        "applied": dg.MetadataValue.json(list(result.applied)),
        "applied_count": len(result.applied),
        "duration_s": dg.MetadataValue.float(round(result.duration_s, 6)),
        "backup_path": dg.MetadataValue.path(result.backup_path)
        if result.backup_path
        else dg.MetadataValue.text("none"),
        "message": result.message,
    }
    if result.sql is not None:
        metadata["sql"] = dg.MetadataValue.md(f"```sql\n{result.sql}\n```")
    return metadata


# --- migrate_databases ---------------------------------------------------------------------


# Launchpad text (class docstrings, Field descriptions) is written for operators; notes for
# developers go in comments like this one. MigrateOpConfig is filled in by the job's config
# mapping: the Launchpad shows MigrateDatabasesConfig instead.
class MigrateOpConfig(dg.Config):
    """How one database is migrated."""

    target: str = Field(default="head", description="Revision to upgrade to (default head).")
    dry_run: bool = Field(default=False, description="Report only; change nothing.")
    backup: bool = Field(default=True, description="Back up the SQLite file first.")
    skip: bool = Field(default=False, description="Leave this database alone.")


def _migrate_op(name: str) -> dg.OpDefinition:
    @dg.op(
        name=f"migrate_{name}",
        description=f"Upgrade the {name} database to its target revision (default head), "
        "through migrations.runner, the code behind `contimg db upgrade`.",
        pool=POOL,
        tags={"contimg/database": name},
        out=dg.Out(dict, description="MigrationResult.to_dict() of this database"),
    )
    def migrate(
        context: dg.OpExecutionContext,
        config: MigrateOpConfig,
        database: dg.ResourceParam[Databases],
    ) -> dict:
        if config.skip:
            context.log.info(f"{name}: not selected in `databases`; skipped")
            context.add_output_metadata({"database": name, "skipped": True})
            return {"database": name, "skipped": True}
        try:
            result = runner.upgrade(
                name,
                database.url(name),
                config.target,
                backup=config.backup,
                dry_run=config.dry_run,
            )
        except MIGRATION_ERRORS as exc:
            raise _as_failure(exc, name, "upgrade") from exc
        context.log.info(result.message)
        context.add_output_metadata(_result_metadata(result))
        return result.to_dict()

    return migrate


MIGRATE_OPS: dict[str, dg.OpDefinition] = {name: _migrate_op(name) for name in DATABASE_NAMES}


class MigrationTargets(dg.Config):
    """Target revision per database: `head`, a revision id (or unique prefix), or `+N` (N
    revisions up from the current one)."""

    products: str = "head"
    cal_registry: str = "head"
    hdf5: str = "head"
    ingest: str = "head"
    data_registry: str = "head"


class MigrateDatabasesConfig(dg.Config):
    """Upgrade the databases' schemas. With no config every database goes to head, each SQLite
    file backed up first; try `dry_run: true` to see the revisions and SQL."""

    dry_run: bool = Field(
        default=False,
        description="Report the revisions and the SQL each database would get; change nothing.",
    )
    backup: bool = Field(
        default=True, description="Back up each SQLite file before migrating it (next to it)."
    )
    targets: MigrationTargets = Field(
        default=MigrationTargets(), description="Target revision per database (default head)."
    )
    databases: list[str] = Field(
        default=[],
        description=f"Only these databases (default: all of {', '.join(DATABASE_NAMES)}); the "
        "others' ops succeed without touching anything.",
    )


@dg.config_mapping
def _migrate_config(config: MigrateDatabasesConfig) -> dict[str, Any]:
    unknown = sorted(set(config.databases) - set(DATABASE_NAMES))
    if unknown:
        raise ConfigurationError(
            "databases", f"unknown database(s) {unknown}; known: {', '.join(DATABASE_NAMES)}"
        )
    selected = set(config.databases or DATABASE_NAMES)
    return {
        "ops": {
            op.name: {
                "config": {
                    "target": getattr(config.targets, name),
                    "dry_run": config.dry_run,
                    "backup": config.backup,
                    "skip": name not in selected,
                }
            }
            for name, op in MIGRATE_OPS.items()
        }
    }


@dg.job(
    description="Upgrade every logical database (one op each) to its target revision; "
    "`dry_run: true` reports the revisions and SQL without applying them.",
    config=_migrate_config,
    tags={"contimg/maintenance": "migrations"},
)
def migrate_databases() -> None:
    for op in MIGRATE_OPS.values():
        op()


# --- rollback_database ---------------------------------------------------------------------


def confirmation_phrase(database: str, target: str) -> str:
    """What `confirm` must say, exactly: the operator types the database and revision again."""
    return f"rollback {database} to {target}"


class RollbackConfig(dg.Config):
    """Roll one database back to an older revision. Data that only the undone revisions hold is
    lost: run with `dry_run: true` first, then set `confirm`."""

    database: str = Field(description=f"One of {', '.join(DATABASE_NAMES)}.")
    target: str = Field(description="Revision to go back to: an id (or unique prefix), -N, base.")
    confirm: str = Field(
        default="",
        description="Must be exactly `rollback <database> to <target>` (not needed for dry_run).",
    )
    dry_run: bool = Field(default=False, description="Report what would be undone; change nothing.")
    backup: bool = Field(default=True, description="Back up the SQLite file first.")


@dg.op(
    description="Downgrade one database to a revision, after an explicit typed confirmation.",
    pool=POOL,
    out=dg.Out(dict, description="MigrationResult.to_dict() of the rollback"),
)
def rollback_database_op(
    context: dg.OpExecutionContext, config: RollbackConfig, database: dg.ResourceParam[Databases]
) -> dict:
    if config.database not in DATABASE_NAMES:
        raise dg.Failure(
            description=f"Unknown database {config.database!r}; "
            f"choose one of {', '.join(DATABASE_NAMES)}."
        )
    expected = confirmation_phrase(config.database, config.target)
    if not config.dry_run and config.confirm.strip() != expected:
        got = f"got {config.confirm!r}" if config.confirm else "it is empty"
        raise dg.Failure(
            description=f"Refusing to roll back {config.database!r} to {config.target!r} "
            f'without confirmation: set `confirm: "{expected}"` in the run config ({got}). '
            "A rollback undoes revisions and drops the data they added; "
            "try `dry_run: true` first.",
            metadata={"database": config.database, "expected_confirm": expected},
        )
    try:
        result = runner.downgrade(
            config.database,
            database.url(config.database),
            config.target,
            backup=config.backup,
            dry_run=config.dry_run,
        )
    except MIGRATION_ERRORS as exc:
        raise _as_failure(exc, config.database, "rollback") from exc
    context.log.info(result.message)
    context.add_output_metadata(_result_metadata(result))
    return result.to_dict()


@dg.job(
    description='Roll one database back to a revision; requires `confirm: "rollback <database> '
    'to <target>"`.',
    tags={"contimg/maintenance": "migrations"},
)
def rollback_database() -> None:
    rollback_database_op()


# --- database_status -----------------------------------------------------------------------


@dg.op(
    description="Revision, pending revisions, reachability, latency and pool status of every "
    "database, probed concurrently within the health timeout.",
    pool=POOL,
    out=dg.Out(list, description="One dict per database (DatabaseHealth.to_dict())"),
)
def report_database_status(
    context: dg.OpExecutionContext, database: dg.ResourceParam[Databases]
) -> list:
    results = health_monitor.check_databases(database)
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn(name, type_, description=description)
            for name, type_, description in health_monitor.STATUS_COLUMNS
        ]
    )
    records = [dg.TableRecord(row) for row in health_monitor.status_rows(results)]
    healthy = sum(1 for h in results if h.healthy)
    pending = health_monitor.pending_revisions(results)
    problems = [h for h in results if not h.healthy]
    metadata: dict[str, Any] = {
        "databases": dg.MetadataValue.table(records=records, schema=schema),
        "healthy": healthy,
        "unhealthy": len(results) - healthy,
        "pending_revisions": sum(len(v) for v in pending.values()),
        "details": dg.MetadataValue.json(health_monitor.status_details(results)),
    }
    if problems or pending:
        lines = [f"- **{h.database}**: {h.cause}" for h in problems]
        lines += [f"- **{name}**: pending {', '.join(revs)}" for name, revs in pending.items()]
        metadata["problems"] = dg.MetadataValue.md("\n".join(lines))
    context.add_output_metadata(metadata)
    # One short line: the table is in the metadata, where it has room.
    log = context.log.info if healthy == len(results) else context.log.warning
    log(health_monitor.headline(results))
    return [h.to_dict() for h in results]


@dg.job(
    description="Report every database's revision, pending revisions, reachability, latency and "
    "pool status as a table in the run's metadata.",
    tags={"contimg/maintenance": "status"},
)
def database_status() -> None:
    report_database_status()


__all__ = [
    "MigrateDatabasesConfig",
    "RollbackConfig",
    "confirmation_phrase",
    "database_status",
    "migrate_databases",
    "rollback_database",
]
