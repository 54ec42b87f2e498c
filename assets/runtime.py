"""Where a step ran: the host and process recorded in each product asset's metadata.

Under the multiprocess and Celery executors every step runs in a process of its own, possibly on
another machine; operators (and the scale-out tests) read from the materialization which worker
did the work without digging through worker logs.
"""

from __future__ import annotations

import os
import socket

import dagster as dg


def step_process_metadata() -> dict[str, dg.MetadataValue]:
    """`step_host` and `step_pid` of the process running the current step."""
    return {
        "step_host": dg.MetadataValue.text(socket.gethostname()),
        "step_pid": dg.MetadataValue.int(os.getpid()),
    }
