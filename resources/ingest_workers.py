"""Who holds an ingest-queue row, and taking rows back from workers that died.

A claim is tagged `host:pid:run_id`. A run killed with SIGKILL leaves its rows `in_progress`;
on the same host we can tell at once that the process is gone and put the rows back to
`pending`, instead of waiting for the stale limit. Rows of other hosts fall back to the time
limit (`requeue_stale`), since their liveness cannot be checked from here.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from sqlalchemy.engine import Engine

from resources.processes import pid_alive
from resources.repositories import ingest as ingest_queue


def worker_id(run_id: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def release_dead_claims(engine: Engine, obs_date: dt.date | None = None) -> int:
    """in_progress rows claimed by a process of this host that no longer exists -> pending."""
    host = socket.gethostname()
    released = 0
    with engine.begin() as conn:
        for path, claimed_by in ingest_queue.in_progress_claims(conn, obs_date):
            parts = (claimed_by or "").split(":", 2)
            if len(parts) < 2 or parts[0] != host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid != os.getpid() and not pid_alive(pid):
                ingest_queue.transition(conn, path, "in_progress", "pending")
                released += 1
    return released
