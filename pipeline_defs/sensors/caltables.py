"""`caltables_sensor`: new calibration tables under CONTIMG_CALTABLE_DIRS -> the `cal_registry`.

Each tick registers the calibration tables the registry does not know yet (directories named
`<set>_kcal`, `_bpcal`...; resources.calibration.scan), each set valid over its tables' TIME
range. It requests no run: registering is the whole job, and the calibration assets read the
registry when they run. A table that cannot be read, or a set refused because it overlaps an
active set of another name (docs/calibration.md), is logged one warning line per table and left
unregistered; a later tick tries it again (after `contimg cal retire` or a rewrite), and
`contimg cal register --supersede` takes it in over the older set.

Off by default, like `hdf5_files_sensor`: a site turns it on when the solver's directories are
mounted.
"""

import json
import time

import dagster as dg

from resources.calibration.scan import scan_directories
from resources.database import Databases
from resources.metrics import SENSOR_TICK_SECONDS
from resources.settings import caltable_dirs

SENSOR_NAME = "caltables_sensor"
#: Failures logged one line each per tick (the rest: `contimg cal scan` prints them all).
MAX_LOGGED_FAILURES = 50


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Registers the new calibration tables of CONTIMG_CALTABLE_DIRS in the "
    "cal_registry database (set = file name without its suffix, valid over its TIME range); "
    "overlapping sets are refused and logged. Requests no runs.",
)
def caltables_sensor(
    context: dg.SensorEvaluationContext, database: dg.ResourceParam[Databases]
) -> dg.SensorResult:
    started = time.monotonic()
    scan = scan_directories(database.engine("cal_registry"), caltable_dirs())
    seen: set[str] = set()
    for failure in scan.failures[:MAX_LOGGED_FAILURES]:
        if failure.message not in seen:  # a refused set: one message for its tables
            seen.add(failure.message)
            context.log.warning(f"not registered: {failure.error_class}: {failure.message}")
    summary = scan.summary()
    if scan.sets:
        context.log.info(f"{summary}; registered sets {', '.join(scan.sets)}")
    cursor = json.dumps({"last_scan": summary, "sets": scan.sets}, sort_keys=True)
    SENSOR_TICK_SECONDS.labels(sensor=SENSOR_NAME).observe(time.monotonic() - started)
    return dg.SensorResult(skip_reason=summary, cursor=cursor)
