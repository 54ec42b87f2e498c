"""invalidate_fits_cache_job, executed in process against a real cache file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipeline_defs.jobs.fits_cache import invalidate_fits_cache_job
from resources.dagster_resources import FITSService
from resources.fits_service import FitsMetadataService
from tests.resources.fits.helpers import dsa_image


def test_job_invalidates_matching_entries(tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite3"
    paths = [dsa_image(tmp_path / d / "a.fits", size=16) for d in ("keep", "drop")]
    FitsMetadataService(cache_path=cache).parse_many(paths)
    result = invalidate_fits_cache_job.execute_in_process(
        run_config={"ops": {"invalidate_fits_cache": {"config": {
            "pattern": str(tmp_path / "drop" / "*")}}}},
        resources={"fits": FITSService(cache_path=str(cache))},
        instance=dg.DagsterInstance.ephemeral(),
    )  # fmt: skip
    assert result.success
    assert result.output_for_node("invalidate_fits_cache") == 1
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = output.event_specific_data.metadata
    assert metadata["invalidated"].value == 1 and metadata["entries_left"].value == 1
    outcomes = FitsMetadataService(cache_path=cache).parse_many(paths)
    assert [o.from_cache for o in outcomes] == [True, False]
