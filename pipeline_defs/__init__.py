"""contimg's Dagster side: the code location (`pipeline_defs.definitions.defs`), its jobs,
sensors, schedules, executors, monitoring and the `contimg` command line.

Importing this package does not import Dagster: most `contimg` commands never need it.
"""

# First, before anything imports prometheus_client: multiprocess metrics (docs/ops/metrics.md).
# Only the variable is exported here; the directory appears when a process records a value, so
# `contimg --help` (or any read-only command) run anywhere leaves nothing behind.
from resources.metrics_bootstrap import ensure_multiprocess_dir

ensure_multiprocess_dir(create=False)
