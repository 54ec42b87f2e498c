"""Alembic environment shared by the five logical databases (docs/schemas.md).

Which database a run is for comes from, in order: `config.attributes["database_name"]` (set by
`migrations.runner`), the `contimg_database` option of the ini section, or the section name
itself (`alembic -n products upgrade head`). Each database has its own history under
`migrations/<name>/versions/` and its own version table `alembic_version_<name>`, so all five can
share one PostgreSQL database next to Dagster's own `alembic_version`.

The URL comes from `config.attributes["url"]`, else `resources.settings.database_url(name)`;
a connection handed over in `config.attributes["connection"]` is used as is.
"""

from __future__ import annotations

import logging.config
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from migrations.runner import (
    configure_options,
    database_name_from_config,
    lock_for_migration,
    migration_engine,
    sqlite_foreign_key_violations,
)
from resources.errors import MigrationError
from resources.settings import database_url

config = context.config
name = database_name_from_config(config)

if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_migrations_offline() -> None:
    url = config.attributes.get("url") or database_url(name)
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **configure_options(config, name, online=False, url=url),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    options: dict[str, Any] = configure_options(config, name, online=True, url=None)
    if connection.dialect.name == "sqlite":
        # migration_engine() gives SQLite real BEGIN/COMMIT, so DDL is transactional and a
        # failing revision rolls back like on PostgreSQL.
        options["transactional_ddl"] = True
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        lock_for_migration(connection, name)
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            violations = sqlite_foreign_key_violations(connection)
            if violations:
                raise MigrationError(
                    name,
                    f"foreign key check failed after migrating: {violations[:5]}",
                    hint="The revision left rows pointing at missing parents; fix its data step.",
                )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = config.attributes.get("url") or database_url(name)
    engine = migration_engine(url)
    try:
        with engine.connect() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
