"""Build the Definitions on import: what long-lived step processes preload.

The forkserver of the multiprocess executor (`preload_modules`) and the Celery workers
(`-i pipeline_defs.celery_worker`) import this module once, so the processes they fork start with
Dagster, astropy and our assets loaded. It calls `build_definitions()` explicitly: importing
`pipeline_defs.definitions` alone imports only Dagster (its `defs` is lazy).
"""

from pipeline_defs.definitions import build_definitions

DEFINITIONS = build_definitions()
