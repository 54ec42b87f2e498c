"""The daily partitions of every image product: one partition per UTC observation date."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

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
