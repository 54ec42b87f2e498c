"""`python -m pipeline_defs.cli.fits_main FILE...`: `contimg fits inspect --json` as a module.

Lets tests and scripts run the inspector in a fresh process without the console-script wrapper.
"""

from __future__ import annotations

import sys

from pipeline_defs.cli.fits import inspect_command

if __name__ == "__main__":
    inspect_command.main(["--json", *sys.argv[1:]], prog_name="contimg fits inspect")
