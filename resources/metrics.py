"""Every Prometheus metric of contimg, defined once (names, help, labels, buckets).

Runs and steps are separate processes, so the exporter aggregates with prometheus_client's
multiprocess mode (see docs/ops/metrics.md). Gauges therefore declare how they combine across
processes: `livesum` for quantities each live process holds a share of (checked-out connections),
`mostrecent` for facts any process may observe (is the database up).

Code elsewhere imports the metric objects from here and never creates its own.

Naming follows the Prometheus conventions: prefix `contimg_`, base units in the name (`_seconds`),
counters are declared without `_total` (prometheus_client appends it in the exposition, so
`DB_POOL_EXHAUSTED` is scraped as `contimg_db_pool_exhausted_total`).

Two kinds of metric live here:

* metric objects (`Counter`, `Gauge`, `Histogram`) that the code updating them owns; in multiprocess
  mode each process writes its own mmap file under `PROMETHEUS_MULTIPROC_DIR` and the exporter sums
  them (see `resources/metrics_bootstrap.py`: the directory must be set before the first import of
  prometheus_client in a process, and an unwritable one switches this process to in-memory values);
* `ScrapeGauge` specs for values that are *read* at scrape time by the exporter
  (`pipeline_defs/monitoring/exporter.py`) from the databases and from the Dagster instance. Nobody sets
  these; they are listed here so that every name and help text is defined in one place. Where a
  scrape-time gauge shares its name with a metric object (`contimg_db_up`, ...), the exporter's
  fresh probe wins and the value other processes recorded is dropped from the exposition.
"""

from __future__ import annotations

from dataclasses import dataclass

from resources.metrics_bootstrap import prepare_values_directory

# In multiprocess mode the first value below opens a file in PROMETHEUS_MULTIPROC_DIR, which
# `pipeline_defs` only exported (it writes nothing on import). The directory is created here,
# before prometheus_client is imported: if it cannot be written, the variable is withheld so that
# prometheus_client chooses in-memory values and this import cannot fail (one warning says so).
prepare_values_directory()

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

DB_LABELS = ("database",)

# --- database pool (docs/database-resource.md) ------------------------------------------------------------
DB_POOL_CHECKED_OUT = Gauge(
    "contimg_db_pool_checked_out",
    "Connections currently checked out of the pool, summed over live processes.",
    DB_LABELS,
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "contimg_db_pool_size",
    "Configured pool size (persistent connections) per process, summed over live processes.",
    DB_LABELS,
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "contimg_db_pool_overflow",
    "Overflow connections currently open beyond pool_size, summed over live processes.",
    DB_LABELS,
    multiprocess_mode="livesum",
)
DB_POOL_MAX_OVERFLOW = Gauge(
    "contimg_db_pool_max_overflow",
    "Configured max_overflow per process, summed over live processes (capacity is "
    "pool_size + max_overflow).",
    DB_LABELS,
    multiprocess_mode="livesum",
)
DB_POOL_WAIT_SECONDS = Histogram(
    "contimg_db_pool_wait_seconds",
    "Time spent waiting to check a connection out of the pool.",
    DB_LABELS,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DB_POOL_EXHAUSTED = Counter(
    "contimg_db_pool_exhausted",
    "Checkouts that gave up because no connection freed up within pool_timeout.",
    DB_LABELS,
)
DB_CONNECTION_ERRORS = Counter(
    "contimg_db_connection_errors",
    "Failed attempts to open or use a database connection.",
    DB_LABELS,
)
DB_UP = Gauge(
    "contimg_db_up",
    "1 when the last health probe of the database succeeded, else 0.",
    DB_LABELS,
    multiprocess_mode="mostrecent",
)
DB_SCHEMA_AT_HEAD = Gauge(
    "contimg_db_schema_at_head",
    "1 when the database's schema revision equals the migrations' head, else 0.",
    DB_LABELS,
    multiprocess_mode="mostrecent",
)
DB_PROBE_LATENCY_SECONDS = Gauge(
    "contimg_db_probe_latency_seconds",
    "Latency of the last health probe (SELECT 1) of the database.",
    DB_LABELS,
    multiprocess_mode="mostrecent",
)

# --- migrations ------------------------------------------------------------------------------
MIGRATION_RUNS = Counter(
    "contimg_migration_runs",
    "Migration commands run, by database, direction and outcome.",
    ("database", "direction", "outcome"),
)

# --- FITS parsing ----------------------------------------------------------------------------
FITS_PARSE_SECONDS = Histogram(
    "contimg_fits_parse_duration_seconds",
    "Time to validate a FITS file and extract its metadata (cache misses only).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FITS_PARSE_ERRORS = Counter(
    "contimg_fits_parse_errors",
    "FITS files that could not be parsed, by error class.",
    ("error_class",),
)
FITS_CACHE_HITS = Counter("contimg_fits_cache_hits", "Metadata served from the FITS cache.")
FITS_CACHE_MISSES = Counter(
    "contimg_fits_cache_misses", "Metadata lookups that had to parse the file."
)

# --- products --------------------------------------------------------------------------------
IMAGES_PROCESSED = Counter(
    "contimg_images_processed",
    "Images handled by an asset, by asset and outcome (ok, failed, skipped).",
    ("asset", "outcome"),
)
THUMBNAILS_WRITTEN = Counter("contimg_thumbnails_written", "Thumbnail PNG files written.")
QA_GRADES = Counter("contimg_qa_grades", "QA grades assigned, by grade.", ("grade",))
SENSOR_TICK_SECONDS = Histogram(
    "contimg_sensor_tick_duration_seconds",
    "Duration of one sensor evaluation, by sensor.",
    ("sensor",),
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# --- read at scrape time by the exporter (never set by pipeline code) -----------------------


@dataclass(frozen=True)
class ScrapeGauge:
    """Name, help and labels of a gauge the exporter computes at scrape time."""

    name: str
    documentation: str
    labels: tuple[str, ...] = ()

    def family(self) -> GaugeMetricFamily:
        """An empty family to which the exporter adds one sample per label set."""
        return GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))


# From the databases (one short, time-limited probe per database per scrape).
SCRAPE_DB_UP = ScrapeGauge(
    "contimg_db_up",
    "1 when the exporter's probe of the database (SELECT 1) succeeded within the timeout, else 0.",
    DB_LABELS,
)
SCRAPE_DB_SCHEMA_AT_HEAD = ScrapeGauge(
    "contimg_db_schema_at_head",
    "1 when the database's schema revision equals the migrations' head, else 0 (also 0 when "
    "the database is down or not migrated yet).",
    DB_LABELS,
)
SCRAPE_DB_PROBE_LATENCY_SECONDS = ScrapeGauge(
    "contimg_db_probe_latency_seconds",
    "Duration of the exporter's probe of the database at this scrape.",
    DB_LABELS,
)
SCRAPE_IMAGES_BY_GRADE = ScrapeGauge(
    "contimg_images",
    "Images catalogued in the products database, by QA grade (good, warn, fail; ungraded: no "
    "QA row yet).",
    ("grade",),
)
SCRAPE_INGEST_QUEUE_DEPTH = ScrapeGauge(
    "contimg_ingest_queue_depth",
    "Files in the ingest queue, by state (pending, in_progress, completed, failed).",
    ("state",),
)
SCRAPE_NEWEST_OBSERVATION = ScrapeGauge(
    "contimg_newest_observation_timestamp_seconds",
    "Observation time (DATE-OBS, unix seconds) of the newest image catalogued in products.",
)
SCRAPE_CALTABLE_NEWEST_ACTIVE_AGE_HOURS = ScrapeGauge(
    "contimg_caltable_newest_active_age_hours",
    "Hours since the newest active calibration table was registered in cal_registry (absent when "
    "no table is active or the database is down).",
)

# From the Dagster instance (runs, materializations and asset checks of this code location).
SCRAPE_DAGSTER_INSTANCE_UP = ScrapeGauge(
    "contimg_dagster_instance_up",
    "1 when the exporter could read the Dagster instance within the timeout, else 0.",
)
SCRAPE_DAGSTER_RUNS = ScrapeGauge(
    "contimg_dagster_runs",
    "Runs recorded in the Dagster instance for this code location's jobs, by job and status.",
    ("dagster_job", "status"),
)
SCRAPE_DAGSTER_QUEUED_RUNS = ScrapeGauge(
    "contimg_dagster_queued_runs",
    "Runs waiting in the Dagster run queue (all jobs of the instance).",
)
SCRAPE_ASSET_LAST_MATERIALIZATION = ScrapeGauge(
    "contimg_dagster_asset_last_materialization_timestamp_seconds",
    "Unix time of the newest successful materialization of the asset (any partition).",
    ("asset",),
)
SCRAPE_ASSET_MATERIALIZATION_AGE = ScrapeGauge(
    "contimg_dagster_asset_materialization_age_seconds",
    "Seconds since the newest successful materialization of the asset (any partition).",
    ("asset",),
)
SCRAPE_ASSET_CHECK_PASSED = ScrapeGauge(
    "contimg_dagster_asset_check_passed",
    "Latest result of the asset check per day, for its newest evaluated days: 1 passed, 0 failed.",
    ("asset", "check", "partition"),
)

# Self-monitoring of the exporter.
SCRAPE_COLLECTOR_DURATION_SECONDS = ScrapeGauge(
    "contimg_exporter_collect_duration_seconds",
    "Time the exporter spent on each scrape-time collector at this scrape.",
    ("collector",),
)

SCRAPE_GAUGES: tuple[ScrapeGauge, ...] = (
    SCRAPE_DB_UP,
    SCRAPE_DB_SCHEMA_AT_HEAD,
    SCRAPE_DB_PROBE_LATENCY_SECONDS,
    SCRAPE_IMAGES_BY_GRADE,
    SCRAPE_INGEST_QUEUE_DEPTH,
    SCRAPE_NEWEST_OBSERVATION,
    SCRAPE_CALTABLE_NEWEST_ACTIVE_AGE_HOURS,
    SCRAPE_DAGSTER_INSTANCE_UP,
    SCRAPE_DAGSTER_RUNS,
    SCRAPE_DAGSTER_QUEUED_RUNS,
    SCRAPE_ASSET_LAST_MATERIALIZATION,
    SCRAPE_ASSET_MATERIALIZATION_AGE,
    SCRAPE_ASSET_CHECK_PASSED,
    SCRAPE_COLLECTOR_DURATION_SECONDS,
)
