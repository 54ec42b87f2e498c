"""The job that makes a day's image products: metadata, thumbnails, QA and statistics."""

from __future__ import annotations

import dagster as dg

daily_products_job = dg.define_asset_job(
    name="daily_products_job",
    selection=dg.AssetSelection.groups("images"),
    description="fits_metadata -> image_thumbnails, image_qa (+checks) -> pipeline_stats for one "
    "observation day. Backfill a range with `dagster job backfill -j daily_products_job`.",
)
