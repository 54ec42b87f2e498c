"""Switching a SQLite file to WAL while other processes may be opening it too.

Shared by the five databases' engines (resources/engines.py) and the FITS metadata cache
(resources/fits/cache.py), which does not import SQLAlchemy (`contimg fits inspect` stays light).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def ensure_wal(cursor: Any, timeout_s: float) -> None:
    """Switch the file of `cursor` (a DB-API cursor of sqlite3, or aiosqlite's adapted one) to
    WAL once, waiting up to `timeout_s` for other connections.

    Changing the journal mode needs the file to itself, and SQLite answers `database is locked`
    at once (without its busy handler) while another connection of a fresh file is inside a
    transaction: a second migrator racing the first, or several step processes opening a fresh
    cache together (2 of 60 failed in a test of 6 at once). Reading the mode honours the busy
    timeout and costs nothing once the file is in WAL, which it stays; only the switch retries.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        # Two statements, not a chained call: aiosqlite's adapted cursor returns no cursor.
        cursor.execute("PRAGMA journal_mode")
        row = cursor.fetchone()
        if row is not None and str(row[0]).lower() in ("wal", "memory"):
            return
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)  # back off while the other connection finishes its transaction
        delay = min(delay * 2, 0.2)
