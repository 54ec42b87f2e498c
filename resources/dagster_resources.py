"""The Dagster resources. Each is a `ConfigurableResource` whose `create_resource` hands assets,
ops and sensors the plain object (`Databases`, `FitsMetadataService`), as Dagster's resource docs
show: one way to reach a database or the FITS service, and no method declared twice.

Assets declare `database: dg.ResourceParam[Databases]` and `fits: dg.ResourceParam[
FitsMetadataService]`; the Definitions register `Database()` and `FITSService()` under those keys.
Every field is optional: unset means "from the environment at run time" (docs/configuration.md),
so the embedded SQLite default needs no configuration at all. This is the only module of
resources/ that imports Dagster: the CLI's commands that do not run Dagster never load it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from resources.database import Databases
from resources.fits_service import FitsMetadataService
from resources.settings import PoolSettings


class Database(dg.ConfigurableResource):
    """The five logical databases, as `Databases` (pooled engines per process, health probes).

    To take the password from a variable, leave `password` unset: it reads
    CONTIMG_DB_PASSWORD at run time, and a run does not fail when that variable is unset
    (an `EnvVar` field would).
    """

    products_url: str | None = None
    cal_registry_url: str | None = None
    hdf5_url: str | None = None
    ingest_url: str | None = None
    data_registry_url: str | None = None
    password: str | None = None
    pool_size: int | None = None
    max_overflow: int | None = None
    pool_timeout: float | None = None
    pool_recycle: int | None = None
    pool_pre_ping: bool | None = None
    connect_timeout: float | None = None
    health_timeout: float | None = None

    def create_resource(self, context: dg.InitResourceContext) -> Databases:
        # Engines are shared through the per-process cache (resources/engines.py): building the
        # object opens nothing, and the cached engines outlive the step for sensors and later
        # steps of this process.
        return self.build()

    def build(self) -> Databases:
        """The plain object for these fields (also outside a Dagster execution)."""
        env = PoolSettings.from_env()
        overrides = {
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "pool_timeout": self.pool_timeout,
            "pool_recycle": self.pool_recycle,
            "pool_pre_ping": self.pool_pre_ping,
            "connect_timeout": self.connect_timeout,
            "health_timeout": self.health_timeout,
        }
        settings = PoolSettings(
            **{k: (v if v is not None else getattr(env, k)) for k, v in overrides.items()}
        )
        urls = {
            "products": self.products_url,
            "cal_registry": self.cal_registry_url,
            "hdf5": self.hdf5_url,
            "ingest": self.ingest_url,
            "data_registry": self.data_registry_url,
        }
        return Databases(urls, password=self.password, settings=settings)


class FITSService(dg.ConfigurableResource):
    """FITS metadata parsing with the shared cache, as `FitsMetadataService`; closed after the
    step."""

    cache_path: str | None = None
    cache_ttl_seconds: float | None = None
    max_workers: int | None = None
    obs_date_fallback: str | None = None

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
