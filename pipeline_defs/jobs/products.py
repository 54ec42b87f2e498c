"""The job that makes a day's image products: metadata, thumbnails, QA and statistics."""

from __future__ import annotations

import dagster as dg

from pipeline_defs.location import LOCATION_TAGS

daily_products_job = dg.define_asset_job(
    name="daily_products_job",
    selection=dg.AssetSelection.groups("images", "sources"),
    description="fits_metadata -> image_thumbnails, image_qa (+checks), image_sources -> "
    "pipeline_stats, source_associations -> forced_photometry -> source_variability for one "
    "observation day; a range of days in one run with `dg launch --job daily_products_job "
    "--partition-range D1...D2`, one run per day with `dagster job backfill -w workspace.yaml "
    "-j daily_products_job --from D1 --to D2`.",
    tags=LOCATION_TAGS,
)
