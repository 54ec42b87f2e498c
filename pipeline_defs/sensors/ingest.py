"""`fits_ingest_sensor`: new or changed FITS files -> ingest queue -> one run per observation day.

Each tick scans the incoming directories against the ingest queue (headers of known, unchanged
files are never re-read), with a budget of header reads and seconds so the tick ends well inside
Dagster's 60 s limit; the remainder is picked up by the next tick. It then asks for one run of
`daily_products_job` per observation day with pending files. The run key is a digest of that
day's files (path, size, mtime, whatever their state), so a repeated tick, or a tick while a run
is working through the day, cannot launch the same work twice, while a file added or changed
later yields a new key and a new run.

Files that fail before a date could be read (not FITS, unreadable header, no DATE-OBS) belong to
no day, so no run ever reports them: the tick names them instead, one short log line per file
read this tick, and its result (skip reason or log line) lists them by name and error class, with
the number of such files still in the queue (`contimg queue --failed` has the messages).
"""

import json
import os
import time

import dagster as dg

from assets.partitions import DAILY_PARTITIONS, partitions_start
from pipeline_defs.jobs.products import daily_products_job
from resources.database import Databases
from resources.fits_service import FitsMetadataService
from resources.ingest_scan import ScanFailure, incoming_patterns, scan_incoming
from resources.metrics import SENSOR_TICK_SECONDS
from resources.repositories import ingest as ingest_queue
from resources.settings import env_float, env_int, incoming_dirs

SENSOR_NAME = "fits_ingest_sensor"
MAX_REMEMBERED_DAYS = 400
#: Failed files logged one line each per tick, and named in the tick's result.
MAX_LOGGED_FAILURES = 50
MAX_NAMED_FAILURES = 5


def failure_note(failures: list[ScanFailure], undated: int) -> str:
    """What the tick's result adds about unreadable files ('' when there are none).

    Short, since it ends a skip reason: the first few names with their error class, then how many
    files of the queue failed before a date could be read and where their messages are.
    """
    parts = []
    if failures:
        named = ", ".join(
            f"{os.path.basename(f.path)} ({f.error_class})" for f in failures[:MAX_NAMED_FAILURES]
        )
        more = len(failures) - MAX_NAMED_FAILURES
        parts.append(f"failed this tick: {named}" + (f" and {more} more" if more > 0 else ""))
    if undated:
        parts.append(f"{undated} files failed before a date could be read")
    if not parts:
        return ""
    return "; " + "; ".join(parts) + " (`contimg queue --failed`)"


@dg.sensor(
    name=SENSOR_NAME,
    job=daily_products_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Registers new/changed FITS files of CONTIMG_INCOMING_DIRS in the ingest queue "
    "and requests one daily_products_job run per observation day with pending files.",
)
def fits_ingest_sensor(
    context: dg.SensorEvaluationContext,
    database: dg.ResourceParam[Databases],
    fits: dg.ResourceParam[FitsMetadataService],
) -> dg.SensorResult:
    started = time.monotonic()
    state = json.loads(context.cursor) if context.cursor else {}
    requested: dict[str, str] = state.get("requested", {})
    engine = database.engine("ingest")
    scan = scan_incoming(
        engine,
        incoming_dirs(),
        patterns=incoming_patterns(),
        max_header_reads=env_int("CONTIMG_SENSOR_MAX_HEADER_READS"),
        time_budget_s=env_float("CONTIMG_SENSOR_TIME_BUDGET_S"),
        mtime_fallback=fits.obs_date_fallback == "mtime",
        partitions_start=partitions_start(),
    )
    for failure in scan.failures[:MAX_LOGGED_FAILURES]:
        message = ingest_queue.short_error(failure.path, failure.message)
        context.log.warning(f"cannot catalogue {failure.path}: {failure.error_class}: {message}")
    valid = set(DAILY_PARTITIONS.get_partition_keys())
    max_runs = env_int("CONTIMG_SENSOR_MAX_RUNS_PER_TICK")
    run_requests: list[dg.RunRequest] = []
    for day, (digest, n_files) in sorted(ingest_queue.pending_digests(engine).items()):
        key = day.isoformat()
        if requested.get(key) == digest:
            continue
        if key not in valid:
            context.log.warning(f"{n_files} pending files dated {key}: no such partition yet")
            continue
        if len(run_requests) >= max_runs:
            break
        run_requests.append(
            dg.RunRequest(
                run_key=f"{SENSOR_NAME}:{key}:{digest}",
                partition_key=key,
                tags={"contimg/trigger": SENSOR_NAME, "contimg/pending_files": str(n_files)},
            )
        )
        requested[key] = digest
    if len(requested) > MAX_REMEMBERED_DAYS:
        requested = dict(sorted(requested.items())[-MAX_REMEMBERED_DAYS:])
    # Bounded: the count only has to tell the operator to look, not be exact past ten thousand.
    undated = len(ingest_queue.failed_without_date(engine, limit=10_000))
    summary = scan.summary() + failure_note(scan.failures, undated)
    cursor = json.dumps({"requested": requested, "last_scan": summary}, sort_keys=True)
    SENSOR_TICK_SECONDS.labels(sensor=SENSOR_NAME).observe(time.monotonic() - started)
    if not run_requests:
        return dg.SensorResult(skip_reason=f"no new work: {summary}", cursor=cursor)
    context.log.info(
        f"{summary}; requesting runs for {', '.join(r.partition_key for r in run_requests)}"
    )
    return dg.SensorResult(run_requests=run_requests, cursor=cursor)
