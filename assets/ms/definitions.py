"""`measurement_sets`: per observation day, the measurement sets indexed, linked and judged.

Each run indexes the new or changed MSs of its days under CONTIMG_MS_DIRS (casacore reads the
FIELD, SPECTRAL_WINDOW and OBSERVATION subtables and the main table's TIME; an unchanged MS is
only stat'ed), links the day's images to the MS each was made from, copies the calibration
recorded in cal_registry onto each MS, and shows the day's MSs with their stage, subband group
and calibration. The sensor (`measurement_sets_sensor`, off by default) asks for a run when a
day's MSs change; a schedule, a backfill or a launch from the UI works without it.

Three checks, warnings recorded per day (docs/upstream.md, "Checks"): every MS has an
applicable calibration set; no retired calibration table was applied to one; no two active sets
of one type overlap in validity over the day.
"""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from assets.ms.lineage import gather_day
from assets.ms.summary import MsDay, describe_overlap, failures_markdown, ms_markdown
from assets.partitions import (
    DAILY_PRODUCT_POLICY,
    add_day_metadata,
    daily_check_spec,
    day_check_evaluations,
    partition_dates,
)
from assets.runtime import step_process_metadata
from assets.tables import PARTITION_ROW_COUNT, ROW_COUNT, table_definition_metadata
from resources.database import Databases
from resources.ms.registration import scan_ms
from resources.repositories import products as repo
from resources.settings import ms_dirs

ASSET_NAME = "measurement_sets"
CALIBRATED_CHECK = "every_ms_has_calibration"
RETIRED_CHECK = "no_retired_table_applied"
OVERLAP_CHECK = "active_sets_do_not_overlap"
#: The asset's group in the UI: upstream of the images, beside `subband_groups`.
GROUP_NAME = "upstream"

CHECK_SPECS = [
    daily_check_spec(
        CALIBRATED_CHECK,
        asset=ASSET_NAME,
        blocking=False,
        description="Every measurement set of the day has an applicable calibration set "
        "(the newest active set whose window, widened by 12 h, covers its mid-time).",
    ),
    daily_check_spec(
        RETIRED_CHECK,
        asset=ASSET_NAME,
        blocking=False,
        description="No calibration table recorded as applied to an MS of the day has been "
        "retired since (the MS needs calibrating again).",
    ),
    daily_check_spec(
        OVERLAP_CHECK,
        asset=ASSET_NAME,
        blocking=False,
        description="No two active calibration sets of one table type overlap in validity over "
        "the day (`contimg cal register` refuses this unless --supersede).",
    ),
]


class MeasurementSetsConfig(dg.Config):
    """Whether the run scans CONTIMG_MS_DIRS first."""

    scan: bool = Field(
        default=True,
        description="Index the run's new or changed MSs of CONTIMG_MS_DIRS first; off: report "
        "what is already indexed.",
    )


class _Verdict:
    def __init__(self, passed: bool, description: str, metadata: dict) -> None:
        self.passed, self.description, self.metadata = passed, description, metadata


def day_verdicts(day: MsDay) -> dict[str, _Verdict]:
    """The three checks' verdicts for one day, with their metadata."""
    passed, text = day.calibration_check()
    missing = [m.path.rsplit("/", 1)[-1] for m in day.without_calibration]
    calibrated = _Verdict(
        passed,
        text,
        {
            "measurement_sets": len(day.sets),
            "without_calibration": len(missing),
            "examples": ", ".join(missing[:10]) or "-",
        },
    )
    passed, text = day.retired_check()
    retired = _Verdict(
        passed,
        text,
        {
            "ms_with_retired_tables": len(day.retired_applied),
            "tables": dg.MetadataValue.json(day.retired_applied),
        },
    )
    passed, text = day.overlap_check()
    overlap = _Verdict(
        passed,
        text,
        {
            "overlaps": len(day.overlaps),
            "details": "; ".join(describe_overlap(o) for o in day.overlaps[:10]) or "-",
        },
    )
    return {CALIBRATED_CHECK: calibrated, RETIRED_CHECK: retired, OVERLAP_CHECK: overlap}


def day_metadata(day: MsDay, total: int, elapsed: float) -> dict:
    """What one day's materialization shows (numbers plot across partitions in the UI)."""
    return {
        "measurement_sets": len(day.sets),
        **{f"stage_{stage}": n for stage, n in day.stages.items()},
        "failed": len(day.failures),
        "images_linked": day.images,
        "without_calibration": len(day.without_calibration),
        "measurement_sets_table": dg.MetadataValue.md(ms_markdown(day.sets, day.applicable)),
        "unreadable": dg.MetadataValue.md(failures_markdown(day.failures)),
        ROW_COUNT: total,
        PARTITION_ROW_COUNT: len(day.sets),
        "duration_s": round(elapsed, 3),
    }


@dg.asset(
    name=ASSET_NAME,
    **{**DAILY_PRODUCT_POLICY, "group_name": GROUP_NAME},
    check_specs=CHECK_SPECS,
    # Each MS is converted from one subband group (`ms_index.hdf5_group`).
    deps=["subband_groups"],
    kinds={"casa", "sql"},
    tags={"domain": "ms"},
    metadata=table_definition_metadata(repo.MS_INDEX, "products"),
    description="The observation day's measurement sets (CONTIMG_MS_DIRS, read with casacore): "
    "time range, field, phase centre, spectral windows and channels, the subband group each "
    "came from, stage converted/calibrated/imaged, the calibration applied; the day's images "
    "linked to their MS (`products.images.ms_id`). Unreadable MSs are in "
    "`products.ms_failures`.",
)
def measurement_sets(
    context: dg.AssetExecutionContext,
    config: MeasurementSetsConfig,
    database: dg.ResourceParam[Databases],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    dates = partition_dates(context)
    engine = database.engine("products")
    scan_line = "not scanned (config scan: false)"
    if config.scan:
        # An MS belongs to the day its name starts with (its observation's start); one scan
        # serves the whole run.
        prefixes = sorted({d.isoformat() for d in dates})
        scan = scan_ms(engine, ms_dirs(), names_starting=prefixes)
        scan_line = scan.summary()
        for failure in scan.failures[:50]:
            context.log.warning(f"cannot read {failure.error}")
    with database.begin("products") as conn:
        relinked = repo.link_images_to_ms(conn, dates)
    days: dict[dt.date, MsDay] = {}
    # The index's size does not change while the days are gathered: one count for all.
    with database.connect("products") as conn:
        total = sum(n for stage, n in repo.ms_counts(conn).items() if stage != "failed")
    for day in dates:
        started = time.monotonic()
        days[day] = gather_day(database, day)
        add_day_metadata(context, day, day_metadata(days[day], total, time.monotonic() - started))
    context.log.info(
        f"{dates[0].isoformat()}..{dates[-1].isoformat()}: "
        f"{sum(len(d.sets) for d in days.values())} measurement sets, "
        f"{sum(len(d.failures) for d in days.values())} unreadable, {relinked} image links "
        f"changed; {scan_line}"
    )
    yield dg.MaterializeResult(metadata={"scan": scan_line, **step_process_metadata()})
    verdicts = {day: day_verdicts(ms_day) for day, ms_day in days.items()}
    yield from day_check_evaluations(context, dg.AssetKey(ASSET_NAME), CHECK_SPECS, verdicts)
