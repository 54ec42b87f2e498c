"""The metrics directory appears when a process records values, not when `pipeline_defs` is
imported; `keep_metrics_in_memory()` keeps a read-only process out of it entirely.

Each case runs in a fresh interpreter: prometheus_client picks its mode once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT_LAZY = """
import os, sys
from pathlib import Path
import pipeline_defs  # exports PROMETHEUS_MULTIPROC_DIR, creates nothing
directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
assert directory == Path(sys.argv[1]) / "prometheus", directory
assert not directory.exists(), "created on import"
from resources import metrics  # a process about to record values
assert directory.is_dir(), "not created for the first value"
metrics.DB_CONNECTION_ERRORS.labels(database="ingest").inc()
assert any(p.name.startswith("counter_") for p in directory.iterdir())
"""

SCRIPT_IN_MEMORY = """
import os, sys
from pathlib import Path
import pipeline_defs
from resources.metrics_bootstrap import keep_metrics_in_memory, shared_multiprocess_dir
assert keep_metrics_in_memory()
assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
assert shared_multiprocess_dir() == Path(sys.argv[1]) / "prometheus"  # still known to readers
from resources import metrics
metrics.DB_CONNECTION_ERRORS.labels(database="ingest").inc()
from prometheus_client import REGISTRY
value = REGISTRY.get_sample_value("contimg_db_connection_errors_total", {"database": "ingest"})
assert value == 1.0, value
assert keep_metrics_in_memory()  # still in memory once prometheus_client is imported
"""


def _python(script: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["CONTIMG_DATA_DIR"] = str(data)
    return subprocess.run(
        [sys.executable, "-c", script, str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_directory_is_created_when_values_are_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _python(SCRIPT_LAZY, data)
    assert result.returncode == 0, result.stderr


def test_read_only_process_keeps_values_in_memory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _python(SCRIPT_IN_MEMORY, data)
    assert result.returncode == 0, result.stderr
    assert not data.exists()
