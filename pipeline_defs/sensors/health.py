"""`database_health_sensor`: probes every database each tick and reports changes once.

Settings: CONTIMG_HEALTH_SENSOR_INTERVAL is read when the definitions are built (code location
load), CONTIMG_AUTO_MIGRATE and CONTIMG_DB_HEALTH_TIMEOUT at every tick; defaults in
docs/configuration.md ("Metrics and health"), behaviour in docs/ops/health-checks.md.

The tick logic lives in `evaluate_health_tick` (a plain function of a context, the databases and
the settings); the sensor is its thin wrapper. Dagster gives a sensor evaluation 60 s; a tick costs
about one health timeout however many databases are down or hung, because they are probed
concurrently and each probe (revision read included) is bounded by that timeout.

No `from __future__ import annotations` here: Dagster inspects the sensor signature at import.
"""

import time

import dagster as dg

from pipeline_defs.jobs.database import migrate_databases
from pipeline_defs.monitoring import health as health_monitor
from resources import metrics
from resources.database import Databases
from resources.errors import ConfigurationError
from resources.settings import SETTINGS, env_bool, env_int

SENSOR_NAME = "database_health_sensor"
INTERVAL_ENV = "CONTIMG_HEALTH_SENSOR_INTERVAL"
AUTO_MIGRATE_ENV = "CONTIMG_AUTO_MIGRATE"
DEFAULT_INTERVAL_S: int = SETTINGS["CONTIMG_HEALTH_SENSOR_INTERVAL"].default


def health_sensor_interval() -> int:
    """Seconds between ticks from CONTIMG_HEALTH_SENSOR_INTERVAL (default 60, at least 1)."""
    interval = env_int(INTERVAL_ENV)
    if interval < 1:
        raise ConfigurationError(INTERVAL_ENV, f"must be at least 1 second, got {interval}")
    return interval


def evaluate_health_tick(
    context: dg.SensorEvaluationContext,
    databases: Databases,
    *,
    auto_migrate: bool,
    timeout: float | None = None,
) -> dg.SensorResult:
    """One tick: probe, log transitions once, report pending revisions, maybe request a run."""
    started = time.perf_counter()
    previous = health_monitor.MonitorState.from_cursor(context.cursor)
    if previous.unreadable:
        context.log.warning(f"ignoring an unreadable sensor cursor ({previous.unreadable})")
    results = health_monitor.check_databases(databases, timeout=timeout)
    for change in health_monitor.transitions(previous, results):
        (context.log.info if change.healthy else context.log.warning)(change.message())
    state = health_monitor.next_state(previous, results)

    text = health_monitor.summary(results)
    pending = health_monitor.pending_revisions(results)
    run_requests: list[dg.RunRequest] = []
    if pending:
        key = health_monitor.pending_key(pending)
        described = health_monitor.describe_pending(pending)
        if key != previous.pending:
            context.log.info(f"pending migrations: {described}")
        if not auto_migrate:
            text += f" Auto-migrate is off ({AUTO_MIGRATE_ENV}): launch migrate_databases to apply."
        elif key in previous.requested:
            text += f" migrate_databases was already requested for these revisions ({key})."
        else:
            run_requests.append(
                dg.RunRequest(
                    run_key=key,
                    run_config={"databases": sorted(pending)},
                    tags={"contimg/trigger": SENSOR_NAME, "contimg/pending": described[:200]},
                )
            )
            state.requested.append(key)
            context.log.info(f"auto-migrate: requesting migrate_databases ({key}) for {described}")

    elapsed = time.perf_counter() - started
    metrics.SENSOR_TICK_SECONDS.labels(sensor=SENSOR_NAME).observe(elapsed)
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=state.to_cursor())
    return dg.SensorResult(skip_reason=dg.SkipReason(text), cursor=state.to_cursor())


def _auto_migrate(context: dg.SensorEvaluationContext) -> bool:
    try:
        return env_bool(AUTO_MIGRATE_ENV)
    except ConfigurationError as exc:
        context.log.warning(f"{exc}; treating auto-migrate as off")
        return False


def build_database_health_sensor(
    *,
    minimum_interval_seconds: int | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The sensor; the interval defaults to CONTIMG_HEALTH_SENSOR_INTERVAL, read now."""
    interval = minimum_interval_seconds or health_sensor_interval()

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=interval,
        job=migrate_databases,
        default_status=default_status,
        description="Probes every database (reachability, latency, pool, schema revision vs "
        "head) within the health timeout; logs each healthy/unhealthy change once; reports "
        f"pending migrations and, with {AUTO_MIGRATE_ENV}=1, requests migrate_databases once "
        "per pending revision set.",
    )
    def database_health_sensor(
        context: dg.SensorEvaluationContext, database: dg.ResourceParam[Databases]
    ) -> dg.SensorResult:
        return evaluate_health_tick(context, database, auto_migrate=_auto_migrate(context))

    return database_health_sensor


database_health_sensor = build_database_health_sensor()

__all__ = [
    "AUTO_MIGRATE_ENV",
    "INTERVAL_ENV",
    "build_database_health_sensor",
    "database_health_sensor",
    "evaluate_health_tick",
]
