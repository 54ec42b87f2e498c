"""The job that indexes a day's measurement sets: `measurement_sets` and its three checks.

Its own job, as `subband_groups_job` is: the MS sensor asks for it whenever a day's MSs change,
which must not re-run the day's image products.
"""

from __future__ import annotations

import dagster as dg

from pipeline_defs.location import LOCATION_TAGS

measurement_sets_job = dg.define_asset_job(
    name="measurement_sets_job",
    selection=dg.AssetSelection.assets("measurement_sets"),
    description="measurement_sets (+ its calibration checks) for one observation day; a range "
    "of days in one run with `dg launch --job measurement_sets_job --partition-range D1...D2`.",
    tags=LOCATION_TAGS,
)
