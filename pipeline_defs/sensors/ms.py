"""`measurement_sets_sensor`: new or changed measurement sets -> `ms_index` -> a run per day.

Each tick indexes the new or changed `*.ms` directories under CONTIMG_MS_DIRS (at most
CONTIMG_SENSOR_MAX_HEADER_READS of them, oldest name first; an MS whose `table.dat` mtime is
known is only stat'ed) and asks for one `measurement_sets_job` run per day whose MSs changed.
The run key is a digest of what the day then holds (its MSs with their mtimes, its unreadable
ones), so a tick that changes nothing launches nothing, and a re-written MS a new run.

Off by default, like the FITS and HDF5 sensors: a site turns it on when the MS directories are
mounted.
"""

import datetime as dt
import hashlib
import json
import time

import dagster as dg

from pipeline_defs.jobs.ms import measurement_sets_job
from pipeline_defs.sensors.days import day_run_requests
from resources.database import Databases
from resources.ms.registration import scan_ms
from resources.repositories import products as repo
from resources.settings import env_int, ms_dirs

SENSOR_NAME = "measurement_sets_sensor"
MAX_LOGGED_FAILURES = 50


def day_digest(sets: list[repo.MsRecord], failures: list[repo.MsFailureRow]) -> str:
    """A short digest of a day's MSs and failures: the sensor's run key."""
    state = {
        "ms": [[m.path, m.size_bytes, m.n_rows, m.stage] for m in sets],
        "failures": [[f.path, f.error_class] for f in failures],
    }
    text = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dg.sensor(
    name=SENSOR_NAME,
    job=measurement_sets_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Indexes new/changed measurement sets of CONTIMG_MS_DIRS (casacore, subtables "
    "only) in products.ms_index and requests one measurement_sets_job run per observation day "
    "whose MSs changed.",
)
def measurement_sets_sensor(
    context: dg.SensorEvaluationContext, database: dg.ResourceParam[Databases]
) -> dg.SensorResult:
    started = time.monotonic()
    engine = database.engine("products")
    scan = scan_ms(engine, ms_dirs(), max_reads=env_int("CONTIMG_SENSOR_MAX_HEADER_READS"))
    for failure in scan.failures[:MAX_LOGGED_FAILURES]:
        context.log.warning(f"cannot read {failure.error}")

    def describe(day: dt.date) -> tuple[str, dict[str, str]]:
        with database.connect("products") as conn:
            sets = repo.list_ms(conn, obs_date=day)
            failures = repo.ms_failures(conn, day)
        return day_digest(sets, failures), {
            "contimg/measurement_sets": str(len(sets)),
            "contimg/unreadable": str(len(failures)),
        }

    return day_run_requests(
        context,
        sensor_name=SENSOR_NAME,
        changed_days=scan.days,
        describe=describe,
        what="measurement sets",
        summary=scan.summary(),
        started=started,
    )
