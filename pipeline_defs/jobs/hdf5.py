"""The job that groups a day's correlator subband files: `subband_groups` and its check.

Its own job rather than part of `daily_products_job`: the hdf5 sensor asks for it whenever a
day's files change, which must not re-run the day's FITS catalogue, QA and thumbnails (and
the FITS sensor's runs need not regroup subband files).
"""

from __future__ import annotations

import dagster as dg

from pipeline_defs.location import LOCATION_TAGS

subband_groups_job = dg.define_asset_job(
    name="subband_groups_job",
    selection=dg.AssetSelection.assets("subband_groups"),
    description="subband_groups (+ its completeness check) for one observation day; a range of "
    "days in one run with `dg launch --job subband_groups_job --partition-range D1...D2`.",
    tags=LOCATION_TAGS,
)
