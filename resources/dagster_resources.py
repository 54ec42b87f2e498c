"""The Dagster resources. Each is a `ConfigurableResource` whose `create_resource` hands assets,
ops and sensors the plain object (`Databases`, `FitsMetadataService`), as Dagster's resource docs
show: one way to reach a database or the FITS service, and no method declared twice.

Assets declare `database: dg.ResourceParam[Databases]` and `fits: dg.ResourceParam[
FitsMetadataService]`; the Definitions register `Database()` and `FITSService()` under those keys.
Every field is optional: unset means "from the environment at run time" (docs/configuration.md),
so the embedded SQLite default needs no configuration at all. This is the only module of
resources/ that imports Dagster: the CLI's commands that do not run Dagster never load it.

Class docstrings and `Field` descriptions are what the Launchpad shows operators: keep them free
of implementation notes. The one such note: `password` stays a plain optional field read from
CONTIMG_DB_PASSWORD at run time, because Dagster fails resource initialisation when an
`EnvVar` field names an unset variable (docs/database-resource.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from resources.database import Databases
from resources.engines import release_connections
from resources.errors import ConfigurationError
from resources.fits_service import FitsMetadataService
from resources.settings import (
    DATABASE_NAMES,
    PoolSettings,
    check_database_url,
    database_url,
    database_url_env_var,
    get,
    validate_all,
)


class Database(dg.ConfigurableResource):
    """The five logical databases of contimg. Leave a field empty to use the value of the
    environment of the run (docs/configuration.md); with every field empty, each database is a
    SQLite file under CONTIMG_DATA_DIR. A run refuses a database that is not migrated to the
    current schema: run `contimg db upgrade` or the `migrate_databases` job first."""

    products_url: str | None = Field(
        default=None,
        description="URL of the image catalogue database (default: CONTIMG_DB_PRODUCTS_URL).",
    )
    cal_registry_url: str | None = Field(
        default=None,
        description="URL of the calibration registry (default: CONTIMG_DB_CAL_REGISTRY_URL).",
    )
    hdf5_url: str | None = Field(
        default=None, description="URL of the HDF5 file index (default: CONTIMG_DB_HDF5_URL)."
    )
    ingest_url: str | None = Field(
        default=None, description="URL of the ingest queue (default: CONTIMG_DB_INGEST_URL)."
    )
    data_registry_url: str | None = Field(
        default=None,
        description="URL of the published-data registry (default: CONTIMG_DB_DATA_REGISTRY_URL).",
    )
    password: str | None = Field(
        default=None,
        description="Password for URLs that name a user without one. Leave empty to use "
        "CONTIMG_DB_PASSWORD from the run's environment (a run without it still starts).",
    )
    pool_size: int | None = Field(
        default=None, description="Connections kept open per database and process (default 5)."
    )
    max_overflow: int | None = Field(
        default=None, description="Extra connections allowed beyond pool_size (default 10)."
    )
    pool_timeout: float | None = Field(
        default=None, description="Seconds to wait for a free connection (default 30)."
    )
    pool_recycle: int | None = Field(
        default=None,
        description="Seconds after which a connection is replaced; -1 never (default 1800).",
    )
    pool_pre_ping: bool | None = Field(
        default=None, description="Test each connection before use (default true)."
    )
    connect_timeout: float | None = Field(
        default=None, description="Seconds to wait for the server when connecting (default 10)."
    )
    health_timeout: float | None = Field(
        default=None, description="Seconds a health probe may take per database (default 5)."
    )

    def create_resource(self, context: dg.InitResourceContext) -> Databases:
        # Engines are shared through the per-process cache (resources/engines.py): building the
        # object opens nothing, and the cached engines outlive the step for sensors and later
        # steps of this process.
        # A run validates every setting at its start; a sensor tick (no run) only those of the
        # databases, so that e.g. a malformed CONTIMG_AUTO_MIGRATE, which the health sensor
        # tolerates with a warning, cannot stop the sensor that reports the databases' state.
        try:
            return self.build(every_setting=context.run is not None)
        except ConfigurationError as exc:
            # Dagster wraps any other exception as "Error executing resource_fn on
            # ResourceDefinition database", leaving the setting to the cause's traceback; its
            # own error type, with our one line as the message, heads the run's failure instead.
            raise dg.DagsterResourceFunctionError(
                str(exc), user_exception=exc, original_exc_info=sys.exc_info()
            ) from exc

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[Databases]:
        """The databases for one step (or one in-process run); their connections closed after.

        Teardown runs inside the step, before its success is reported, so a long-lived worker
        process (Celery) holds no connection once Dagster hands the step's `database` pool slot
        to the next step; sensors (no run) keep their pooled connections between ticks.
        """
        databases = self.create_resource(context)
        try:
            yield databases
        finally:
            if context.run is not None:
                release_connections()

    def build(self, *, every_setting: bool = True) -> Databases:
        """The plain object for these fields (also outside a Dagster execution).

        Every setting is validated first (`validate_all`; with `every_setting=False` only the
        databases' own), except the variables a field set here overrides, so a bad value fails
        the run at its start, naming the variable, instead of a step deep inside it. A URL field
        is checked like its variable, but a missing directory is left to the engine, which
        reports that database as down (a sensor keeps watching the others).
        """
        fields = {**self._url_fields(), **self._pool_fields(), "CONTIMG_DB_PASSWORD": self.password}
        overridden = tuple(variable for variable, value in fields.items() if value is not None)
        if every_setting:
            validate_all(skip=overridden)
        else:
            for variable in fields:
                if variable not in overridden and variable not in self._url_fields():
                    get(variable)
            for name in DATABASE_NAMES:
                if database_url_env_var(name) not in overridden:
                    database_url(name)
        for name, url in self._url_fields().items():
            if url is not None:
                check_database_url(f"Database.{_field_of(name)}", url, filesystem=False)
        # A field set here wins; only the unset ones read (and validate) their variable.
        settings = PoolSettings(
            **{
                _field_of(variable): value if value is not None else get(variable)
                for variable, value in self._pool_fields().items()
            }
        )
        urls = {name: getattr(self, f"{name}_url") for name in DATABASE_NAMES}
        # Assets and sensors read and write the tables: refuse a database not at head at its
        # first use (health probes and migrations do not depend on this check).
        return Databases(urls, password=self.password, settings=settings, require_schema=True)

    def _url_fields(self) -> dict[str, str | None]:
        """Environment variable -> the URL field that overrides it."""
        return {database_url_env_var(name): getattr(self, f"{name}_url") for name in DATABASE_NAMES}

    def _pool_fields(self) -> dict[str, object]:
        return {
            f"CONTIMG_DB_{field.upper()}": getattr(self, field)
            for field in (
                "pool_size",
                "max_overflow",
                "pool_timeout",
                "pool_recycle",
                "pool_pre_ping",
                "connect_timeout",
                "health_timeout",
            )
        }


def _field_of(variable: str) -> str:
    """CONTIMG_DB_PRODUCTS_URL -> products_url (the Database field that overrides it)."""
    return variable.removeprefix("CONTIMG_DB_").lower()


class FITSService(dg.ConfigurableResource):
    """Reads FITS headers and pixels, with the metadata cache shared by every process. Leave a
    field empty to use the run's environment (docs/configuration.md)."""

    cache_path: str | None = Field(
        default=None,
        description="Metadata cache file (default: CONTIMG_FITS_CACHE_PATH, else "
        "<data dir>/cache/fits_metadata.sqlite3).",
    )
    cache_ttl_seconds: float | None = Field(
        default=None, description="Seconds a cached entry stays valid (default 86400)."
    )
    max_workers: int | None = Field(
        default=None, description="Files parsed in parallel per step (default 4)."
    )
    obs_date_fallback: str | None = Field(
        default=None,
        description="`mtime` dates files without an observation time by their modification "
        "time; `none` marks them failed (default: CONTIMG_OBS_DATE_FALLBACK, none).",
    )

    def create_resource(self, context: dg.InitResourceContext) -> FitsMetadataService:
        return self.build()

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[FitsMetadataService]:
        service = self.create_resource(context)
        try:
            yield service
        finally:
            service.close()

    def build(self) -> FitsMetadataService:
        """The plain service for these fields (unset ones from the environment)."""
        return FitsMetadataService.from_settings(
            cache_path=self.cache_path,
            ttl_seconds=self.cache_ttl_seconds,
            max_workers=self.max_workers,
            obs_date_fallback=self.obs_date_fallback,
        )
