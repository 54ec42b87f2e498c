"""`invalidate_fits_cache_job`: forget cached FITS metadata for paths matching a glob.

No `from __future__ import annotations` here: Dagster inspects the op signature at import.

Thin wiring over `FitsMetadataService.invalidate`. The cache is shared by every process, so one
run invalidates it for sensors, steps and the CLI alike. Needs the `fits` resource (FITSService).
"""

import dagster as dg
from pydantic import Field

from resources.fits_service import FitsMetadataService


class InvalidateFitsCacheConfig(dg.Config):
    pattern: str = Field(
        description="Glob over absolute file paths (`*` also crosses `/`); `*` clears the cache. "
        "A relative pattern is taken relative to the run's working directory."
    )


@dg.op(description="Delete cached FITS metadata whose path matches the configured glob.")
def invalidate_fits_cache(
    context: dg.OpExecutionContext,
    config: InvalidateFitsCacheConfig,
    fits: dg.ResourceParam[FitsMetadataService],
) -> int:
    removed = fits.invalidate(config.pattern)
    stats = fits.stats()
    context.log.info(f"invalidated {removed} cached FITS metadata entries for {config.pattern!r}")
    context.add_output_metadata(
        {
            "pattern": config.pattern,
            "invalidated": removed,
            "entries_left": stats.cache.entries if stats.cache else 0,
            "cache_path": stats.cache.path if stats.cache else "disabled",
        }
    )
    return removed


@dg.job(description="Forget cached FITS metadata for files matching a path glob.")
def invalidate_fits_cache_job() -> None:
    invalidate_fits_cache()
