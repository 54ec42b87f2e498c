"""The Definitions object: a table of contents. Logic lives in resources/ and assets/."""

from __future__ import annotations

import warnings

import dagster as dg

# We use beta parameters on purpose (BackfillPolicy.single_run() for range backfills in one run);
# Dagster warns about them on every load, which would bury the CLI's own one-line errors.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message="Found asset job named", category=UserWarning)

# The imports below define assets and sensors: they come after the filters on purpose.
from assets.fits_metadata import fits_metadata
from assets.qa import image_qa
from assets.stats import pipeline_stats
from assets.thumbnails import image_thumbnails
from pipeline_defs.executors import contimg_executor
from pipeline_defs.jobs.database import database_status, migrate_databases, rollback_database
from pipeline_defs.jobs.fits_cache import invalidate_fits_cache_job
from pipeline_defs.jobs.products import daily_products_job
from pipeline_defs.schedules import daily_products_schedule
from pipeline_defs.sensors.health import database_health_sensor
from pipeline_defs.sensors.ingest import fits_ingest_sensor
from pipeline_defs.sensors.run_failures import run_failure_sensor
from resources.database import Database
from resources.fits_service import FITSService

# Every resource field left unset reads its environment variable at run time
# (docs/configuration.md), so this one object serves the embedded default and production alike.
RESOURCES = {
    "database": Database(),
    "fits": FITSService(),
}

defs = dg.Definitions(
    assets=[fits_metadata, image_thumbnails, image_qa, pipeline_stats],
    jobs=[
        daily_products_job,
        migrate_databases,
        rollback_database,
        database_status,
        invalidate_fits_cache_job,
    ],
    schedules=[daily_products_schedule],
    sensors=[fits_ingest_sensor, database_health_sensor, run_failure_sensor],
    resources=RESOURCES,
    # Multiprocess by default; CONTIMG_EXECUTOR=celery (read when a run starts) sends the steps
    # to Celery workers instead (pipeline_defs/executors.py, docs/ops/scaling.md).
    executor=contimg_executor,
)
