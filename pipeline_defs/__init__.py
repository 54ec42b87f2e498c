"""The contimg Dagster code location: `defs` is what `dagster dev` and `dagster ... -m pipeline_defs` load."""

# First, before anything imports prometheus_client: multiprocess metrics (docs/ops/metrics.md).
from resources.metrics_bootstrap import ensure_multiprocess_dir

ensure_multiprocess_dir()

from pipeline_defs.definitions import defs

__all__ = ["defs"]
