"""`subband_groups`: per observation day, the correlator's subband files grouped into observations.

Each day (the UTC date of a group's earliest file) is regrouped from the files registered in
the `hdf5` database, after registering the day's new or changed files of CONTIMG_HDF5_DIRS
(headers only; the sensor usually did that already, and unchanged files are only stat'ed, so a
schedule, a backfill or a launch from the UI works without the sensor). The grouping is stored
as each file's `group_id` in `hdf5_files`, from which the present, missing and duplicate
subbands of every group are read back (`resources.repositories.hdf5.day_groups`).

One check, a warning: at least 95 % of the day's groups are complete. Like QA's, it is recorded
per day's partition (`AssetCheckEvaluation(partition=...)`), so a range run shows each day's
verdict on that day.
"""

import datetime as dt
import time
import warnings
from collections.abc import Iterator

import dagster as dg

# Not re-exported at the top level in 1.13 (assets/qa/definitions.py says why it is used).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from pydantic import Field

from assets.hdf5.summary import (
    MIN_COMPLETE_FRACTION,
    DaySummary,
    failures_markdown,
    incomplete_markdown,
)
from assets.partitions import (
    DAILY_PARTITIONS,
    DAILY_PRODUCT_POLICY,
    add_day_metadata,
    partition_dates,
)
from assets.runtime import step_process_metadata
from assets.tables import PARTITION_ROW_COUNT, ROW_COUNT, table_definition_metadata
from resources.database import Databases
from resources.hdf5.scan import scan_directories
from resources.models.hdf5 import GROUP_TOLERANCE_S
from resources.repositories import hdf5 as repo
from resources.settings import hdf5_dirs

ASSET_NAME = "subband_groups"
COMPLETE_CHECK = "groups_complete_share"
#: The asset's group in the UI: upstream of the images, not in `daily_products_job`'s `images`.
GROUP_NAME = "upstream"


class SubbandGroupsConfig(dg.Config):
    """How a day's files are grouped, and the share of complete groups the check asks for."""

    tolerance_s: float = Field(
        default=GROUP_TOLERANCE_S,
        ge=0,
        description="A file joins a group when its timestamp is at most this many seconds after "
        "the group's earliest file (docs/upstream.md, 'Grouping rule').",
    )
    scan: bool = Field(
        default=True,
        description="Register the run's new or changed files of CONTIMG_HDF5_DIRS before "
        "grouping (headers only); off: group what is already registered.",
    )
    min_complete_fraction: float = Field(
        default=MIN_COMPLETE_FRACTION,
        ge=0,
        le=1,
        description="The check warns when a smaller share of the day's groups is complete.",
    )


def _check_spec() -> dg.AssetCheckSpec:
    # Partitioned asset checks are a preview feature in 1.13; the warning is silenced here only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            COMPLETE_CHECK,
            asset=ASSET_NAME,
            blocking=False,
            description="At least 95 % (run config: min_complete_fraction) of the day's "
            "subband groups have all 16 subbands; the incomplete ones are in the metadata.",
            partitions_def=DAILY_PARTITIONS,
        )


CHECK_SPEC = _check_spec()


def day_metadata(summary: DaySummary, total_files: int, elapsed: float) -> dict:
    """What one day's materialization shows (numbers plot across partitions in the UI)."""
    return {
        "groups": len(summary.groups),
        "complete": summary.complete,
        "incomplete": len(summary.incomplete_groups),
        "complete_fraction": round(summary.complete_fraction, 4),
        "failed_files": len(summary.failures),
        "incomplete_groups": dg.MetadataValue.md(incomplete_markdown(summary.incomplete_groups)),
        "unreadable_files": dg.MetadataValue.md(failures_markdown(summary.failures)),
        ROW_COUNT: total_files,
        PARTITION_ROW_COUNT: summary.files,
        "duration_s": round(elapsed, 3),
    }


def check_metadata(summary: DaySummary) -> dict:
    return {
        "groups": len(summary.groups),
        "complete": summary.complete,
        "complete_fraction": round(summary.complete_fraction, 4),
        "min_complete_fraction": summary.min_complete_fraction,
        "incomplete_groups": dg.MetadataValue.md(incomplete_markdown(summary.incomplete_groups)),
    }


def _targets(
    context: dg.AssetExecutionContext, days: list[dt.date]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """Each day's materialization of this run, for its evaluation to point at (one query)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(ASSET_NAME), asset_partitions=[d.isoformat() for d in days]
        ),
        limit=max(1, 4 * len(days)),
    ).records
    targets: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records:  # newest first: the first one of a partition is this run's
        partition = record.partition_key
        if partition is not None and partition not in targets:
            targets[partition] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
    return targets


@dg.asset(
    name=ASSET_NAME,
    **{**DAILY_PRODUCT_POLICY, "group_name": GROUP_NAME},
    check_specs=[CHECK_SPEC],
    kinds={"hdf5", "sql"},
    tags={"domain": "hdf5"},
    metadata=table_definition_metadata(repo.HDF5_FILES, "hdf5"),
    description="The observation day's correlator subband files (CONTIMG_HDF5_DIRS, registered "
    "headers only) grouped into observations within a tolerance (60 s): per group the present, "
    "missing and duplicate subbands, stored as `hdf5.hdf5_files.group_id`; unreadable files "
    "are in `hdf5.hdf5_failures` and join no group.",
)
def subband_groups(
    context: dg.AssetExecutionContext,
    config: SubbandGroupsConfig,
    database: dg.ResourceParam[Databases],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    dates = partition_dates(context)
    engine = database.engine("hdf5")
    scan_line = "not scanned (config scan: false)"
    if config.scan:
        # The run's days and the day after each: a group starting at 23:59:40 keeps files
        # named after midnight. One scan for the whole run.
        prefixes = sorted({(d + dt.timedelta(days=k)).isoformat() for d in dates for k in (0, 1)})
        scan = scan_directories(
            engine, hdf5_dirs(), tolerance_s=config.tolerance_s, names_starting=prefixes
        )
        scan_line = scan.summary()
        for failure in scan.report.failures[:50]:
            context.log.warning(f"cannot read {failure.path}: {failure.error}")
    summaries: dict[dt.date, DaySummary] = {}
    for day in dates:
        started = time.monotonic()
        regrouped = repo.regroup_day(engine, day, tolerance_s=config.tolerance_s)
        others = sorted(regrouped.touched_days - set(dates))
        if others:
            context.log.warning(
                f"regrouping {day.isoformat()} changed the groups of "
                f"{', '.join(d.isoformat() for d in others)}: materialize those days again"
            )
        summary = DaySummary(
            day,
            repo.day_groups(engine, day),
            repo.day_failures(engine, day),
            min_complete_fraction=config.min_complete_fraction,
        )
        summaries[day] = summary
        total = repo.counts(engine)["hdf5_files"]
        add_day_metadata(context, day, day_metadata(summary, total, time.monotonic() - started))
    context.log.info(
        f"{dates[0].isoformat()}..{dates[-1].isoformat()}: "
        f"{sum(len(s.groups) for s in summaries.values())} groups, "
        f"{sum(len(s.incomplete_groups) for s in summaries.values())} incomplete; {scan_line}"
    )
    yield dg.MaterializeResult(metadata={"scan": scan_line, **step_process_metadata()})
    if CHECK_SPEC.key not in context.selected_asset_check_keys:
        return
    targets = _targets(context, dates)
    for day, summary in summaries.items():
        yield dg.AssetCheckEvaluation(
            asset_key=CHECK_SPEC.asset_key,
            check_name=COMPLETE_CHECK,
            passed=summary.passed,
            metadata=check_metadata(summary),
            target_materialization_data=targets.get(day.isoformat()),
            severity=dg.AssetCheckSeverity.WARN,
            description=summary.check_description(),
            blocking=False,
            partition=day.isoformat(),
        )
    yield dg.Output(
        None, output_name=context.assets_def.get_output_name_for_asset_check_key(CHECK_SPEC.key)
    )
