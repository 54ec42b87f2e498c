"""Cross-process cache of parsed FITS metadata (docs/fits-service.md), in one small SQLite file.

Dagster steps, sensors and the CLI are different processes, so the cache lives on disk:
`<data dir>/cache/fits_metadata.sqlite3` by default (not one of the five logical databases; it can
be deleted at any time). SQLite in WAL mode lets readers run while one writer writes; every
statement is a single autocommit statement and a busy timeout absorbs writer contention.

Semantics:
* key = absolute path; an entry is served only when the file's current (size, mtime_ns) equal the
  stored ones AND it is younger than the TTL AND it was written by this schema version. A modified
  file is therefore always re-parsed, whatever the TTL.
* errors are not cached: a broken file is re-validated on every request (it may have been
  replaced, or still be being written, and the ingest queue records the failure anyway).
* invalidation: `invalidate(pattern)` deletes entries whose path matches a glob (SQLite GLOB:
  `*` also crosses `/`, case-sensitive); relative patterns are made absolute against the current
  directory unless they start with `*`.
* hit/miss counters: per instance (for `stats()`) and Prometheus `FITS_CACHE_HITS/MISSES`
  (unless `record_metrics=False`: `contimg fits inspect` keeps no metrics, and importing
  prometheus_client would cost it ~40 ms for values that die with the process).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resources.fits.metadata import ImageMetadata
from resources.settings import SETTINGS, under_data_dir
from resources.sqlite_wal import ensure_wal

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS: float = SETTINGS["CONTIMG_FITS_CACHE_TTL_SECONDS"].default
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

_DDL = """
CREATE TABLE IF NOT EXISTS fits_metadata (
    path TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    parsed_at REAL NOT NULL,
    schema_version INTEGER NOT NULL,
    metadata TEXT NOT NULL
)
"""


class Uncounted:
    """Stands in for a Prometheus metric in a process that records none (`record_metrics`)."""

    def labels(self, *args: Any, **kwargs: Any) -> Uncounted:
        return self

    def inc(self, amount: float = 1.0) -> None:
        """Counts nothing."""

    def observe(self, value: float) -> None:
        """Observes nothing."""


UNCOUNTED = Uncounted()


def default_cache_path() -> Path:
    """CONTIMG_FITS_CACHE_PATH, else <data dir>/cache/fits_metadata.sqlite3 (read at call time)."""
    return under_data_dir("CONTIMG_FITS_CACHE_PATH", "cache", "fits_metadata.sqlite3")


def metadata_to_json(meta: ImageMetadata) -> str:
    return json.dumps(meta.to_json_dict(), separators=(",", ":"), allow_nan=True)


def metadata_from_json(payload: str | dict[str, Any]) -> ImageMetadata:
    """Inverse of `ImageMetadata.to_json_dict` (also reads `fits inspect --json` metadata)."""
    d = dict(json.loads(payload) if isinstance(payload, str) else payload)
    d["naxis"] = tuple(d["naxis"])
    d["warnings"] = tuple(d.get("warnings") or ())
    d["date_obs"] = dt.datetime.fromisoformat(d["date_obs"]) if d.get("date_obs") else None
    d["obs_date"] = dt.date.fromisoformat(d["obs_date"]) if d.get("obs_date") else None
    return ImageMetadata(**d)


def normalise_pattern(pattern: str) -> str:
    if pattern.startswith("*") or os.path.isabs(pattern):
        return pattern
    return os.path.join(os.path.abspath("."), pattern)


@dataclass(frozen=True)
class CacheStats:
    path: str
    entries: int
    hits: int  # this instance's hits since creation
    misses: int
    ttl_seconds: float


class FitsMetadataCache:
    """The SQLite metadata cache. Thread-safe (a connection per thread and process)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        record_metrics: bool = True,
    ) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self._hits_metric: Any = UNCOUNTED
        self._misses_metric: Any = UNCOUNTED
        if record_metrics:
            from resources.metrics import FITS_CACHE_HITS, FITS_CACHE_MISSES

            self._hits_metric, self._misses_metric = FITS_CACHE_HITS, FITS_CACHE_MISSES
        self.ttl_seconds = float(ttl_seconds)
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connect()  # creates the file, switches it to WAL and creates the table

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # Several processes may be creating the file at this moment: the switch to WAL waits.
        cursor = conn.cursor()
        ensure_wal(cursor, BUSY_TIMEOUT_S)
        cursor.close()
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_DDL)
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- operations ----------------------------------------------------------------------

    def get(
        self, path: str, size_bytes: int, mtime_ns: int, *, need_fingerprint: bool = False
    ) -> ImageMetadata | None:
        """The cached metadata if still valid for this (size, mtime_ns), else None (a miss)."""
        meta = self._lookup(path, size_bytes, mtime_ns)
        if meta is not None and need_fingerprint and not meta.fingerprint:
            meta = None
        with self._lock:
            if meta is None:
                self.misses += 1
            else:
                self.hits += 1
        (self._misses_metric if meta is None else self._hits_metric).inc()
        return meta

    def _lookup(self, path: str, size_bytes: int, mtime_ns: int) -> ImageMetadata | None:
        try:
            row = (
                self._connect()
                .execute(
                    "SELECT size_bytes, mtime_ns, parsed_at, schema_version, metadata "
                    "FROM fits_metadata WHERE path = ?",
                    (path,),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            # The cache is an accelerator: a damaged or locked cache file means "parse again".
            log.warning("FITS cache %s unreadable (%s); parsing instead", self.path, exc)
            return None
        if row is None:
            return None
        size, mtime, parsed_at, version, payload = row
        if (size, mtime) != (size_bytes, mtime_ns) or version != SCHEMA_VERSION:
            return None
        if self.clock() - parsed_at >= self.ttl_seconds:
            return None
        try:
            return metadata_from_json(payload)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("FITS cache entry for %s unreadable (%s); parsing instead", path, exc)
            return None

    def put(self, meta: ImageMetadata) -> None:
        try:
            self._connect().execute(
                "INSERT INTO fits_metadata (path, size_bytes, mtime_ns, parsed_at, "
                "schema_version, metadata) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET size_bytes = excluded.size_bytes, "
                "mtime_ns = excluded.mtime_ns, parsed_at = excluded.parsed_at, "
                "schema_version = excluded.schema_version, metadata = excluded.metadata",
                (
                    meta.path,
                    meta.size_bytes,
                    meta.mtime_ns,
                    self.clock(),
                    SCHEMA_VERSION,
                    metadata_to_json(meta),
                ),
            )
        except sqlite3.Error as exc:
            log.warning("FITS cache %s not writable (%s); entry for %s skipped", self.path, exc,
                        meta.path)  # fmt: skip

    def invalidate(self, pattern: str) -> int:
        """Delete the entries whose path matches the glob; returns how many were deleted."""
        cur = self._connect().execute(
            "DELETE FROM fits_metadata WHERE path GLOB ?", (normalise_pattern(pattern),)
        )
        return int(cur.rowcount)

    def purge_expired(self) -> int:
        cur = self._connect().execute(
            "DELETE FROM fits_metadata WHERE parsed_at <= ?", (self.clock() - self.ttl_seconds,)
        )
        return int(cur.rowcount)

    def entries(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM fits_metadata").fetchone()[0])

    def stats(self) -> CacheStats:
        with self._lock:
            hits, misses = self.hits, self.misses
        return CacheStats(str(self.path), self.entries(), hits, misses, self.ttl_seconds)
