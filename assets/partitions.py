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


# The policies every daily product asset shares, in one place: daily partitions, one run for a
# range backfill, the `database` concurrency pool (the steps hold connections: docs/ops/scaling.md)
# and the `images` group that `daily_products_job` selects.
DAILY_PRODUCT_POLICY: dict[str, Any] = {
    "partitions_def": DAILY_PARTITIONS,
    "backfill_policy": dg.BackfillPolicy.single_run(),
    "pool": "database",
    "group_name": "images",
}


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The observation dates of this run: one, or a range under a single-run backfill."""
    return [dt.date.fromisoformat(key) for key in context.partition_keys]
