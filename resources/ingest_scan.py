"""Discovery of FITS files in the incoming directories, recorded in the ingest queue.

The ingest queue (ingest database) *is* the index: a file whose (size, mtime_ns) equals its queue
row is not opened again, so a directory of 100,000 known files costs one query and 100,000
`stat` calls. Only new or changed files have their headers read, and only up to a budget per call
(header reads and wall-clock), so a sensor tick stays well inside Dagster's 60 s limit; what is
left over is found by the next call.

Used by the `fits_ingest_sensor` and, so that a backfill never depends on the sensor having run,
at the start of every `fits_metadata` partition run.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from resources.errors import (
    FITSParsingError,
    IngestStateError,
    MissingObservationDateError,
    ObservationDateOutOfRangeError,
)
from resources.fits.parser import mtime_observation_time, read_obs_time
from resources.repositories import ingest as ingest_queue
from resources.settings import DEFAULT_INCOMING_PATTERNS
from resources.settings import incoming_patterns as settings_incoming_patterns

DEFAULT_PATTERNS: tuple[str, ...] = tuple(
    p for p in DEFAULT_INCOMING_PATTERNS.split(os.pathsep) if p
)


def incoming_patterns() -> tuple[str, ...]:
    """Glob patterns of file names to ingest: CONTIMG_INCOMING_PATTERNS, os.pathsep-separated."""
    return settings_incoming_patterns()


@dataclass(frozen=True)
class ScanFailure:
    path: str
    error_class: str
    message: str


@dataclass
class ScanResult:
    files_seen: int = 0
    unchanged: int = 0
    registered_new: int = 0
    registered_changed: int = 0
    header_reads: int = 0
    too_young: int = 0
    #: Listed, then gone before its header could be read (deleted or moved meanwhile).
    vanished: int = 0
    failures: list[ScanFailure] = field(default_factory=list)
    dates: dict[dt.date, int] = field(default_factory=dict)  # new/changed files per obs date
    budget_exhausted: bool = False
    duration_s: float = 0.0

    def summary(self) -> str:
        text = (
            f"{self.files_seen} files seen, {self.unchanged} unchanged, "
            f"{self.registered_new} new, {self.registered_changed} changed, "
            f"{len(self.failures)} unreadable headers, {self.header_reads} headers read "
            f"in {self.duration_s:.2f} s"
        )
        if self.too_young:
            text += f", {self.too_young} still being written (skipped)"
        if self.vanished:
            text += f", {self.vanished} vanished while scanned (not queued)"
        if self.budget_exhausted:
            text += "; budget reached, the rest is picked up next time"
        return text


def iter_candidate_files(dirs: Iterable[Path], patterns: Sequence[str]) -> Iterator[os.DirEntry]:
    """Every regular file under the directories (recursively) whose name matches a pattern."""
    stack = [str(d) for d in dirs]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file() and any(
                        fnmatch.fnmatchcase(entry.name, pat) for pat in patterns
                    ):
                        yield entry
        except FileNotFoundError:
            continue  # an incoming directory that does not exist yet is simply empty


def scan_incoming(
    engine: Engine,
    dirs: Iterable[Path],
    *,
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    max_header_reads: int = 5000,
    time_budget_s: float = 30.0,
    min_age_s: float = 2.0,
    mtime_fallback: bool = False,
    partitions_start: dt.date | None = None,
    read_time: Callable[[str], dt.datetime | None] = read_obs_time,
    now: Callable[[], float] = time.time,
) -> ScanResult:
    """Register new and changed files in the ingest queue; return what changed.

    Files modified less than `min_age_s` ago (or less than that ahead of now) are left for the
    next scan (they may still be being copied in). A file whose header cannot be read, or has no
    observation date, or one before `partitions_start`, is registered and immediately marked
    failed with its typed error, so an operator sees it (`contimg queue`, the sensor log) and it
    is retried when the file changes. A file that vanishes between its listing and its header
    read is not registered (counted in `vanished`): it is no unreadable file.
    """
    started = time.monotonic()
    result = ScanResult()
    known = ingest_queue.known_files(engine)
    records: list[ingest_queue.FileRecord] = []
    failed: list[ScanFailure] = []
    wall_now = now()
    for entry in iter_candidate_files(dirs, patterns):
        result.files_seen += 1
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue  # vanished between listing and stat
        path = os.path.abspath(entry.path)
        if known.get(path) == (st.st_size, st.st_mtime_ns):
            result.unchanged += 1
            continue
        # abs(): an mtime far in the future (clock skew of the writing host, a copy that kept a
        # wrong mtime) is no sign of a file being written; without it such a file is skipped
        # until the clock catches up, i.e. possibly forever.
        if abs(wall_now - st.st_mtime_ns / 1e9) < min_age_s:
            result.too_young += 1
            continue
        if result.header_reads >= max_header_reads or time.monotonic() - started > time_budget_s:
            result.budget_exhausted = True
            continue
        result.header_reads += 1
        obs_date: dt.date | None = None
        try:
            when = read_time(path)
            if when is None and mtime_fallback:
                when = mtime_observation_time(st.st_mtime_ns)
            if when is None:
                raise MissingObservationDateError(
                    path, "the header has no observation time, so the file has no partition"
                )
            obs_date = when.date()
            if partitions_start is not None and obs_date < partitions_start:
                raise ObservationDateOutOfRangeError(
                    path,
                    f"observation date {obs_date} is before the first partition {partitions_start}",
                )
        except FITSParsingError as exc:
            if not os.path.lexists(path):
                # Gone since it was listed: nothing to queue, and no fault of the file; a known
                # row keeps its state (the claim of a pending one finds the file `missing`).
                result.vanished += 1
                continue
            failed.append(ScanFailure(path, type(exc).__name__, str(exc)))
        else:
            result.dates[obs_date] = result.dates.get(obs_date, 0) + 1
        records.append(ingest_queue.FileRecord(path, st.st_size, st.st_mtime_ns, obs_date))
    if records:
        registered = ingest_queue.register_files(engine, records)
        result.registered_new = registered.inserted
        result.registered_changed = registered.changed
    for failure in failed:
        _record_failure(engine, failure)
    result.failures = failed
    result.duration_s = time.monotonic() - started
    return result


def _record_failure(engine: Engine, failure: ScanFailure) -> None:
    # register_files put the row in `pending`; take it through the legal path to `failed`.
    try:
        with engine.begin() as conn:
            ingest_queue.transition(conn, failure.path, "pending", "in_progress")
            ingest_queue.mark_failed(conn, failure.path, failure.error_class, failure.message)
    except IngestStateError:
        # Another discoverer (the sensor, a run's index refresh) registered the same file at the
        # same time and already recorded it, or a worker claimed it: nothing left to record.
        # The transaction was rolled back, so the row is exactly as that other party left it.
        pass
