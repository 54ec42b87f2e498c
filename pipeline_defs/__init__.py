"""The contimg Dagster code location: `defs` is what `dagster dev` and `dagster ... -m pipeline_defs` load."""

from pipeline_defs.definitions import defs

__all__ = ["defs"]
