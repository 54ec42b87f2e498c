"""Find the correlator's files under the watched directories and register the new or changed ones.

What `hdf5_files_sensor`, the `subband_groups` asset and `contimg hdf5 scan` share, so the three
cannot disagree on which files count: every `*.hdf5` file under the directories (recursively,
hidden directories such as a writer's `.templates` left out), sorted by name, which for the
correlator's names is time order. A tick reads at most `max_header_reads` headers (the oldest
new or changed files first) and leaves the rest to the next one, so a backlog cannot push a
sensor tick past Dagster's 60 s limit.

Plain code over a SQLAlchemy bind; registration itself is `resources.hdf5.registration`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from resources.engines import Bind
from resources.hdf5.grouping import SubbandGroup
from resources.hdf5.registration import RegistrationReport, register_paths
from resources.models.hdf5 import GROUP_TOLERANCE_S
from resources.repositories import hdf5 as repo

SUFFIX = ".hdf5"


@dataclass
class ScanResult:
    """What one scan found and registered."""

    directories: list[Path]
    missing_dirs: list[Path] = field(default_factory=list)
    found: int = 0
    #: New or changed files left for the next scan (over `max_header_reads`).
    deferred: int = 0
    report: RegistrationReport = field(default_factory=RegistrationReport)

    @property
    def days(self) -> list[dt.date]:
        """The UTC days whose groups or failures this scan may have changed."""
        days = set(self.report.groups)
        days.update(f.obs_date for f in self.report.failures if f.obs_date is not None)
        return sorted(days)

    def summary(self) -> str:
        """One line for a tick's log, a skip reason or the CLI."""
        result = self.report.result
        parts = [
            f"{self.found} files under {len(self.directories)} "
            + ("directory" if len(self.directories) == 1 else "directories"),
            f"{result.inserted} new",
            f"{result.updated} changed",
            f"{self.report.skipped_unchanged + result.unchanged} unchanged",
            f"{len(self.report.failures)} unreadable",
        ]
        if self.deferred:
            parts.append(f"{self.deferred} left for the next scan")
        if self.missing_dirs:
            parts.append("missing dirs: " + ", ".join(str(d) for d in self.missing_dirs))
        return ", ".join(parts)


def safe_workers() -> int | None:
    """Header-reading processes allowed here: 1 inside a daemonic process, else the default.

    A Celery prefork worker (where a step may run) is daemonic, and a daemonic process may not
    start children, so `read_headers`' process pool would fail there; reading in the calling
    process is slower (docs/upstream.md, "Benchmark") but works everywhere.
    """
    return 1 if multiprocessing.current_process().daemon else None


def find_files(directories: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(every `*.hdf5` file under the directories, sorted by name then path; missing dirs).

    `os.walk` without following links; hidden directories are skipped (a writer's staging).
    """
    found: dict[str, Path] = {}
    missing: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            missing.append(directory)
            continue
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                if name.endswith(SUFFIX) and not name.startswith("."):
                    path = os.path.join(root, name)
                    found[path] = Path(path)
    ordered = sorted(found.values(), key=lambda p: (p.name, str(p)))
    return ordered, missing


def _new_or_changed(bind: Bind, paths: Sequence[Path]) -> list[Path]:
    """The paths whose (size, mtime) differ from the database's, or that it does not know."""
    known = repo.known_files(bind, [str(p) for p in paths])
    todo = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            todo.append(path)  # registration records it as vanished
            continue
        if known.get(str(path)) != (info.st_size, info.st_mtime_ns):
            todo.append(path)
    return todo


def scan_directories(
    bind: Bind,
    directories: Iterable[Path],
    *,
    max_header_reads: int | None = None,
    tolerance_s: float = GROUP_TOLERANCE_S,
    names_starting: Sequence[str] = (),
    workers: int | None = None,
) -> ScanResult:
    """Register the new or changed subband files under `directories` and regroup their days.

    `names_starting` keeps only the files whose name starts with one of these prefixes (the
    asset passes the days of its run); `max_header_reads` bounds the headers read, oldest
    first. `workers` defaults to `safe_workers()`.
    """
    dirs = list(directories)
    paths, missing = find_files(dirs)
    if names_starting:
        prefixes = tuple(names_starting)
        paths = [p for p in paths if p.name.startswith(prefixes)]
    result = ScanResult(directories=dirs, missing_dirs=missing, found=len(paths))
    todo = _new_or_changed(bind, paths)
    if max_header_reads is not None and len(todo) > max_header_reads:
        result.deferred = len(todo) - max_header_reads
        todo = todo[:max_header_reads]
    unchanged = len(paths) - len(todo) - result.deferred
    if todo:
        result.report = register_paths(
            bind,
            todo,
            tolerance_s=tolerance_s,
            workers=safe_workers() if workers is None else workers,
        )
    result.report.skipped_unchanged += unchanged
    result.report.seen = len(paths)
    return result


def day_digest(groups: Sequence[SubbandGroup], failures: Sequence[repo.FailureRow]) -> str:
    """A short digest of what a day holds: its groups with their files, and its failures.

    The sensor's run key: a repeated tick over an unchanged day yields the same key (no second
    run), a late file, a re-write or a new failure a new one.
    """
    state = {
        "groups": [[g.group_id, sorted(g.paths)] for g in groups],
        "failures": [[f.path, f.error_class] for f in failures],
    }
    text = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
