"""Every Prometheus metric of contimg, defined once (names, help, labels, buckets).

Runs and steps are separate processes, so the exporter aggregates with prometheus_client's
multiprocess mode (see docs/ops/metrics.md). Gauges therefore declare how they combine across
processes: `livesum` for quantities each live process holds a share of (checked-out connections),
`mostrecent` for facts any process may observe (is the database up).

Code elsewhere imports the metric objects from here and never creates its own.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DB_LABELS = ("database",)

# --- database pool (DESIGN.md §6) ------------------------------------------------------------
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
