"""What a Celery worker's processes inherit from `pipeline_defs.celery_worker` (the module
`dagster-celery worker start -i` imports, docs/ops/scaling.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_celery_worker_runs_its_pixel_passes_on_threads() -> None:
    """Celery's pool processes are the parallelism: importing the worker module keeps every
    pass of the process on threads, even with CONTIMG_PIXEL_POOL=processes."""
    script = (
        "import os\n"
        "os.environ['CONTIMG_PIXEL_POOL'] = 'processes'\n"
        "from resources.fits import pixels\n"
        "assert pixels._may_start_workers()\n"
        "import pipeline_defs.celery_worker\n"
        "assert not pixels._may_start_workers()\n"
        "print(pixels._THREADS_ONLY)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Celery worker" in done.stdout
