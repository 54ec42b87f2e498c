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
import time

import dagster as dg

from pipeline_defs.jobs.hdf5 import subband_groups_job
from pipeline_defs.sensors.days import day_run_requests
from resources.database import Databases
from resources.hdf5.scan import day_digest, scan_directories
from resources.repositories import hdf5 as repo
from resources.settings import env_int, hdf5_dirs

SENSOR_NAME = "hdf5_files_sensor"
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
    engine = database.engine("hdf5")
    scan = scan_directories(
        engine, hdf5_dirs(), max_header_reads=env_int("CONTIMG_SENSOR_MAX_HEADER_READS")
    )
    for failure in scan.report.failures[:MAX_LOGGED_FAILURES]:
        context.log.warning(f"cannot read {failure.path}: {failure.error}")

    def describe(day: dt.date) -> tuple[str, dict[str, str]]:
        groups = repo.day_groups(engine, day)
        incomplete = sum(1 for g in groups if not g.complete)
        digest = day_digest(groups, repo.day_failures(engine, day))
        return digest, {
            "contimg/groups": str(len(groups)),
            "contimg/incomplete_groups": str(incomplete),
        }

    return day_run_requests(
        context,
        sensor_name=SENSOR_NAME,
        changed_days=scan.days,
        describe=describe,
        what="subband files",
        summary=scan.summary(),
        started=started,
    )
