"""What the sensors that ask for one run per changed observation day share.

`hdf5_files_sensor` and `measurement_sets_sensor` each register what changed on disk, then ask
for one run per day whose content changed. The run key is `<sensor>:<day>:<digest of the day>`,
so a tick that changes nothing launches nothing and a changed day a new run; days over the
per-tick limit (CONTIMG_SENSOR_MAX_RUNS_PER_TICK) wait in the cursor for the next tick; the
cursor remembers the last digest asked for of the newest `MAX_REMEMBERED_DAYS` days.
"""

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable

import dagster as dg

from assets.partitions import DAILY_PARTITIONS
from resources.metrics import SENSOR_TICK_SECONDS
from resources.settings import env_int

MAX_REMEMBERED_DAYS = 400


def day_run_requests(
    context: dg.SensorEvaluationContext,
    *,
    sensor_name: str,
    changed_days: Iterable[dt.date],
    describe: Callable[[dt.date], tuple[str, dict[str, str]]],
    what: str,
    summary: str,
    started: float,
) -> dg.SensorResult:
    """The tick's result: a run request per changed day (`describe(day)` gives its digest and
    the run's tags), the cursor, the tick's duration observed. `what` names the day's content
    in the warning for a day outside the partitions; `summary` is the scan's one line."""
    state = json.loads(context.cursor) if context.cursor else {}
    requested: dict[str, str] = state.get("requested", {})
    valid = set(DAILY_PARTITIONS.get_partition_keys())
    max_runs = env_int("CONTIMG_SENSOR_MAX_RUNS_PER_TICK")
    # Days changed by an earlier tick that hit the run limit are considered again.
    pending_before = (dt.date.fromisoformat(k) for k in state.get("pending", []))
    candidates = sorted({*changed_days, *pending_before})
    run_requests: list[dg.RunRequest] = []
    pending: list[str] = []
    for day in candidates:
        key = day.isoformat()
        if len(run_requests) >= max_runs:
            pending.append(key)
            continue
        digest, tags = describe(day)
        if requested.get(key) == digest:
            continue
        if key not in valid:
            context.log.warning(f"{what} dated {key}: no such partition")
            continue
        run_requests.append(
            dg.RunRequest(
                run_key=f"{sensor_name}:{key}:{digest}",
                partition_key=key,
                tags={"contimg/trigger": sensor_name, **tags},
            )
        )
        requested[key] = digest
    if len(requested) > MAX_REMEMBERED_DAYS:
        requested = dict(sorted(requested.items())[-MAX_REMEMBERED_DAYS:])
    cursor = json.dumps(
        {"requested": requested, "pending": pending, "last_scan": summary}, sort_keys=True
    )
    SENSOR_TICK_SECONDS.labels(sensor=sensor_name).observe(time.monotonic() - started)
    if not run_requests:
        return dg.SensorResult(skip_reason=f"no new work: {summary}", cursor=cursor)
    context.log.info(
        f"{summary}; requesting runs for {', '.join(r.partition_key or '' for r in run_requests)}"
    )
    return dg.SensorResult(run_requests=run_requests, cursor=cursor)
