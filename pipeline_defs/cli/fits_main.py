"""`python -m pipeline_defs.cli.fits_main FILE...`: `contimg fits inspect --json` as a module.

Lets tests and scripts run the inspector in a fresh process without the console-script wrapper.
Read-only like the command: its metric values stay in memory (see `pipeline_defs.cli`).
"""

from __future__ import annotations

import sys

from pipeline_defs.cli.fits import inspect_command
from resources.metrics_bootstrap import keep_metrics_in_memory

if __name__ == "__main__":
    keep_metrics_in_memory()  # before the parser's first metric imports prometheus_client
    inspect_command.main(["--json", *sys.argv[1:]], prog_name="contimg fits inspect")
