"""The daily partitions of every image product: one partition per UTC observation date."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import dagster as dg

# Not re-exported at the top level in 1.13; `AssetCheckResult` builds the same record (it links
# the evaluation to the materialization it judged, which the UI shows).
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from resources.settings import get


def partitions_start() -> dt.date:
    """First observation date with a partition (CONTIMG_PARTITIONS_START, docs/configuration.md).

    Read when the code location loads, because Dagster partitions are static definitions;
    changing it takes a reload of the code location.
    """
    return get("CONTIMG_PARTITIONS_START")


# end_offset=1: today's partition exists, so images observed today are materialized today.
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=partitions_start().isoformat(), end_offset=1, timezone="UTC"
)


#: Who answers for the daily products in the UI's owner filter and on each asset page.
OWNERS = ["team:contimg"]

# `daily_products_schedule` asks for yesterday at 02:30 UTC; a materialization between 02:30 and
# 06:00 UTC is on time. At 06:00 without one the asset turns "late" (FAIL) in the UI's freshness
# status until it materializes again (docs/architecture.md, "Owners, tables and freshness"). `FreshnessPolicy` is
# the non-deprecated API of 1.13 (the daemon evaluates it; the freshness checks are superseded).
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 6 * * *",
    lower_bound_delta=dt.timedelta(hours=3, minutes=30),
    timezone="UTC",
)

# The policies every daily product asset shares, in one place: daily partitions, one run for a
# range backfill, the `database` concurrency pool (the steps hold connections: docs/ops/scaling.md),
# the `images` group that `daily_products_job` selects, owners and freshness.
DAILY_PRODUCT_POLICY: dict[str, Any] = {
    "partitions_def": DAILY_PARTITIONS,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "pool": "database",
    "group_name": "images",
    "owners": OWNERS,
    "freshness_policy": DAILY_FRESHNESS,
}


#: The same policies split for a `multi_asset` (assets/products/definitions.py): what belongs
#: to the op that materializes several assets, and what each asset's `AssetSpec` carries.
DAILY_OP_POLICY: dict[str, Any] = {
    key: DAILY_PRODUCT_POLICY[key] for key in ("partitions_def", "backfill_policy", "pool")
}
DAILY_SPEC_POLICY: dict[str, Any] = {
    key: DAILY_PRODUCT_POLICY[key] for key in ("group_name", "owners", "freshness_policy")
}


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The observation dates of this run: one, or a range under a single-run backfill."""
    return [dt.date.fromisoformat(key) for key in context.partition_keys]


def add_day_metadata(
    context: dg.AssetExecutionContext,
    day: dt.date,
    metadata: dict[str, Any],
    asset_key: dg.AssetKey | None = None,
) -> None:
    """Metadata of one day's materialization only.

    A range run (single-run backfill) emits one materialization per partition; metadata
    returned in `MaterializeResult` goes on every one of them, so per-day numbers, tables and
    pictures go through here instead and day D shows day D's. `asset_key` names the asset
    when the op materializes several (a multi_asset).
    """
    context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=day.isoformat())


def daily_check_spec(
    name: str, *, asset: str, blocking: bool, description: str
) -> dg.AssetCheckSpec:
    """A check recorded per day (a partitioned asset check) on a daily asset."""
    # Partitioned asset checks are a preview feature in 1.13 (a warning per spec at load);
    # they are what records a result per day, so the warning is silenced here only.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name,
            asset=asset,
            blocking=blocking,
            description=description,
            partitions_def=DAILY_PARTITIONS,
        )


class DayVerdict(Protocol):
    """One check's verdict for one day."""

    passed: bool
    metadata: dict[str, Any]
    description: str


def day_check_evaluations(
    context: dg.AssetExecutionContext,
    key: dg.AssetKey,
    specs: Sequence[dg.AssetCheckSpec],
    verdicts: Mapping[dt.date, Mapping[str, DayVerdict]],
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Each day's check results, recorded for the day's partition, then the checks' outputs.

    `AssetCheckResult` takes the run's single partition key and cannot serve a range run, so
    the evaluations are built here with `partition=` (what Dagster stores per partition), each
    pointing at its day's materialization of `key` (one query for all days of the run).
    Blocking checks carry `blocking=True`: a failed one fails the step after all days are
    recorded, and what depends on the asset does not run. Each check is also an op output
    (downstream steps wait on it), emitted once per step. Call it after the materializations.
    """
    days = sorted(verdicts)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[d.isoformat() for d in days]),
        limit=max(1, 4 * len(days)),
    ).records
    targets: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records:  # newest first: the first one of a partition is this run's
        partition = record.partition_key
        if partition is not None and partition not in targets:
            targets[partition] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
    selected = context.selected_asset_check_keys
    for day in days:
        for spec in specs:
            if spec.key not in selected:
                continue
            result = verdicts[day][spec.name]
            yield dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=spec.name,
                passed=result.passed,
                metadata=result.metadata,
                target_materialization_data=targets.get(day.isoformat()),
                severity=dg.AssetCheckSeverity.ERROR
                if spec.blocking
                else dg.AssetCheckSeverity.WARN,
                description=result.description,
                blocking=spec.blocking,
                partition=day.isoformat(),
            )
    for spec in specs:
        if spec.key in selected:
            yield dg.Output(
                None, output_name=context.assets_def.get_output_name_for_asset_check_key(spec.key)
            )
