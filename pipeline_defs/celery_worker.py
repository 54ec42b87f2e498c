"""What contimg's Celery workers import at start (`dagster-celery worker start ... -i
pipeline_defs.celery_worker`, docs/ops/scaling.md).

Three things, all about the processes Celery keeps alive between tasks:

- The code location is imported once in the worker's main process, so the pool processes it
  forks start with Dagster, astropy and our modules loaded: the first step of each pool process
  does not pay several seconds of imports.
- A step closes its database connections before it reports back (the `Database` resource's
  teardown, resources/dagster_resources.py): Dagster hands the step's `database` pool slot on
  when it sees the step succeed, and Celery stores that result before `task_postrun` fires.
  After every task the pool process also disposes what is left (below). Unlike the
  multiprocess executor, whose step processes exit, a Celery pool process lives on; without
  this its idle pooled connections would stay open while the next step, possibly of another
  run, takes the slot, and the connection arithmetic (steps in flight x connections per step)
  would no longer bound the load.
- The pixel passes of a step run on threads (`resources.fits.pixels.keep_passes_on_threads`),
  whatever CONTIMG_PIXEL_POOL says: the worker's pool processes (`--concurrency`) are the
  parallelism, one step each; worker processes of our own in each would oversubscribe the
  cores.
"""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun

import pipeline_defs.preload  # noqa: F401  (builds the Definitions, see above)
from resources.engines import dispose_all
from resources.fits.pixels import keep_passes_on_threads

keep_passes_on_threads("a Celery worker: its pool processes are the parallelism")


@task_postrun.connect(weak=False)
def close_database_connections(**_kwargs: Any) -> None:
    """Return this process to zero database connections once a step is done."""
    dispose_all()
