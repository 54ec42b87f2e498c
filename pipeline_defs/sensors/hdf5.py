"""`hdf5_files_sensor`: new or changed correlator files -> the `hdf5` database -> regrouped days.

Each tick registers the new or changed `*.hdf5` files under CONTIMG_HDF5_DIRS (headers only,
at most CONTIMG_SENSOR_MAX_HEADER_READS of them, oldest first; a file whose size and mtime are
known is only stat'ed), which regroups the days they belong to, and asks for one
`subband_groups_job` run per such day. The run key is a digest of what the day then holds (its
groups with their files, its unreadable files), so a tick that changes nothing of a day, or
repeats what an earlier run was asked for, launches nothing, while a late subband, a re-write or
a new failure yields a new key and a new run.

Off by default, like `fits_ingest_sensor`: a site turns it on when the correlator's
directories are mounted.
"""

import datetime as dt
import json
import time

import dagster as dg

from assets.partitions import DAILY_PARTITIONS
from pipeline_defs.jobs.hdf5 import subband_groups_job
from resources.database import Databases
from resources.hdf5.scan import day_digest, scan_directories
from resources.metrics import SENSOR_TICK_SECONDS
from resources.repositories import hdf5 as repo
from resources.settings import env_int, hdf5_dirs

SENSOR_NAME = "hdf5_files_sensor"
MAX_REMEMBERED_DAYS = 400
#: Unreadable files logged one line each per tick (the rest: `contimg hdf5 failed`).
MAX_LOGGED_FAILURES = 50


@dg.sensor(
    name=SENSOR_NAME,
    job=subband_groups_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Registers new/changed correlator subband files of CONTIMG_HDF5_DIRS (headers "
    "only) in the hdf5 database and requests one subband_groups_job run per observation day "
    "whose groups or unreadable files changed.",
)
def hdf5_files_sensor(
    context: dg.SensorEvaluationContext, database: dg.ResourceParam[Databases]
) -> dg.SensorResult:
    started = time.monotonic()
    state = json.loads(context.cursor) if context.cursor else {}
    requested: dict[str, str] = state.get("requested", {})
    engine = database.engine("hdf5")
    scan = scan_directories(
        engine, hdf5_dirs(), max_header_reads=env_int("CONTIMG_SENSOR_MAX_HEADER_READS")
    )
    for failure in scan.report.failures[:MAX_LOGGED_FAILURES]:
        context.log.warning(f"cannot read {failure.path}: {failure.error}")
    valid = set(DAILY_PARTITIONS.get_partition_keys())
    max_runs = env_int("CONTIMG_SENSOR_MAX_RUNS_PER_TICK")
    run_requests: list[dg.RunRequest] = []
    # Days changed by an earlier tick that hit the run limit are considered again.
    candidates = sorted({*scan.days, *(dt.date.fromisoformat(k) for k in state.get("pending", []))})
    pending: list[str] = []
    for day in candidates:
        key = day.isoformat()
        if len(run_requests) >= max_runs:
            pending.append(key)
            continue
        groups = repo.day_groups(engine, day)
        digest = day_digest(groups, repo.day_failures(engine, day))
        if requested.get(key) == digest:
            continue
        if key not in valid:
            context.log.warning(f"subband files dated {key}: no such partition")
            continue
        incomplete = sum(1 for g in groups if not g.complete)
        run_requests.append(
            dg.RunRequest(
                run_key=f"{SENSOR_NAME}:{key}:{digest}",
                partition_key=key,
                tags={
                    "contimg/trigger": SENSOR_NAME,
                    "contimg/groups": str(len(groups)),
                    "contimg/incomplete_groups": str(incomplete),
                },
            )
        )
        requested[key] = digest
    if len(requested) > MAX_REMEMBERED_DAYS:
        requested = dict(sorted(requested.items())[-MAX_REMEMBERED_DAYS:])
    summary = scan.summary()
    cursor = json.dumps(
        {"requested": requested, "pending": pending, "last_scan": summary}, sort_keys=True
    )
    SENSOR_TICK_SECONDS.labels(sensor=SENSOR_NAME).observe(time.monotonic() - started)
    if not run_requests:
        return dg.SensorResult(skip_reason=f"no new work: {summary}", cursor=cursor)
    context.log.info(
        f"{summary}; requesting runs for {', '.join(r.partition_key or '' for r in run_requests)}"
    )
    return dg.SensorResult(run_requests=run_requests, cursor=cursor)
