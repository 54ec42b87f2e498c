"""The contimg code location: `defs` is what `dg dev` (`make ui`), the daemon and every documented
`dg` / `dagster` command load, as the location `contimg` (`[tool.dg]` in pyproject.toml for `dg`,
workspace.yaml for `dagster`; pipeline_defs/location.py).

`defs` is Dagster's own lazy entry point (`@dg.definitions`): importing this module imports only
Dagster; the assets, sensors and jobs (and astropy, matplotlib behind them) are imported when
Dagster calls `defs()`. `build_definitions()` is the same table of contents for Python callers
(tests, the demo, the metrics exporter, the Celery and forkserver preloads); it is built once
per process. Logic lives in resources/ and assets/.
"""

from __future__ import annotations

import functools
import gc
import warnings

import dagster as dg


@functools.cache
def build_definitions() -> dg.Definitions:
    """Every asset, check, job, schedule, sensor and resource of the code location."""
    # We use beta parameters on purpose (BackfillPolicy.single_run() for range backfills in one
    # run); Dagster warns about them on every load, which would bury the CLI's one-line errors.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", message="Found asset job named", category=UserWarning)

    # These imports define assets and sensors: they come after the filters on purpose.
    from assets.hdf5.definitions import subband_groups
    from assets.ms.definitions import measurement_sets
    from assets.products.definitions import image_products
    from assets.sources.definitions import source_catalogue
    from assets.stats.definitions import pipeline_stats
    from pipeline_defs.executors import contimg_executor
    from pipeline_defs.jobs.database import (
        database_status,
        migrate_databases,
        rollback_database,
    )
    from pipeline_defs.jobs.fits_cache import invalidate_fits_cache_job
    from pipeline_defs.jobs.hdf5 import subband_groups_job
    from pipeline_defs.jobs.ms import measurement_sets_job
    from pipeline_defs.jobs.products import daily_products_job
    from pipeline_defs.schedules import daily_products_schedule
    from pipeline_defs.sensors.caltables import caltables_sensor
    from pipeline_defs.sensors.hdf5 import hdf5_files_sensor
    from pipeline_defs.sensors.health import database_health_sensor
    from pipeline_defs.sensors.ingest import fits_ingest_sensor
    from pipeline_defs.sensors.ms import measurement_sets_sensor
    from pipeline_defs.sensors.run_failures import run_failure_sensor
    from resources.dagster_resources import Database, FITSService

    definitions = dg.Definitions(
        # image_products materializes fits_metadata, image_thumbnails, image_qa and
        # image_sources in one step; source_catalogue the associations, forced photometry and
        # variability.
        assets=[
            image_products,
            pipeline_stats,
            source_catalogue,
            subband_groups,
            measurement_sets,
        ],
        jobs=[
            daily_products_job,
            migrate_databases,
            rollback_database,
            database_status,
            invalidate_fits_cache_job,
            subband_groups_job,
            measurement_sets_job,
        ],
        schedules=[daily_products_schedule],
        sensors=[
            fits_ingest_sensor,
            database_health_sensor,
            run_failure_sensor,
            hdf5_files_sensor,
            measurement_sets_sensor,
            caltables_sensor,
        ],
        # Every resource field left unset reads its environment variable at run time
        # (docs/configuration.md), so this one object serves the embedded default and production.
        resources={"database": Database(), "fits": FITSService()},
        # Multiprocess by default; CONTIMG_EXECUTOR=celery (read when a run starts) sends the
        # steps to Celery workers instead (pipeline_defs/executors.py, docs/ops/scaling.md).
        executor=contimg_executor,
    )
    # Everything loaded so far (Dagster, astropy, the definitions: a large heap) lives as long
    # as the process. Moved out of the collector's generations, it is no longer traversed by
    # every full collection during a run nor at interpreter exit: the exit of a `dg launch`
    # process took 0.9 s longer without this (docs/performance.md, "Fixed costs of a run").
    gc.freeze()
    return definitions


@dg.definitions
def defs() -> dg.Definitions:
    """Dagster's lazy entry point to the code location (see the module docstring)."""
    return build_definitions()
