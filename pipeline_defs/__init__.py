"""The contimg Dagster code location: `defs` is what `dagster dev` and `dagster ... -m pipeline_defs` load."""

import warnings

# First, before anything imports prometheus_client: multiprocess metrics (docs/ops/metrics.md).
from resources.metrics_bootstrap import ensure_multiprocess_dir

ensure_multiprocess_dir()

import dagster as dg

# We use BackfillPolicy.single_run() on purpose (README: range backfills in one run); Dagster
# flags that parameter as beta on every import, which would bury the CLI's own one-line errors.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message="Found asset job named", category=UserWarning)

from pipeline_defs.definitions import defs

__all__ = ["defs"]
