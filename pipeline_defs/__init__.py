"""The contimg Dagster code location: `defs` is what `dagster dev` and `dagster ... -m pipeline_defs` load.

`defs` is built on first access, not on import: the `contimg` CLI lives in this package and most
of its commands never need the Definitions (building them costs about 1.5 s per invocation).
Dagster finds `defs` all the same, through `dir()` and attribute access.
"""

from typing import Any

# First, before anything imports prometheus_client: multiprocess metrics (docs/ops/metrics.md).
from resources.metrics_bootstrap import ensure_multiprocess_dir

ensure_multiprocess_dir()

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name != "defs":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pipeline_defs.definitions import defs

    globals()["defs"] = defs
    return defs


def __dir__() -> list[str]:
    return sorted({*globals(), "defs"})
