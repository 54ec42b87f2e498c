"""Register correlator files and group them: the one call a sensor or an asset will make.

`register_paths` stats every path, reads the headers of new or changed files only (a file
whose size and mtime match the database is not opened), records readable and unreadable files
in batches, and re-groups the UTC days that were touched (and the days whose groups that
changed in turn: `resources.repositories.hdf5.regroup_days`). Plain code over a SQLAlchemy bind;
the SQL is in `resources.repositories.hdf5`.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from resources.engines import Bind
from resources.errors import FileNameError, HDF5FileAccessError
from resources.hdf5.grouping import SubbandGroup
from resources.hdf5.headers import FailedFile, SubbandHeader, failed_file, one_line, read_headers
from resources.models.hdf5 import GROUP_TOLERANCE_S, parse_hdf5_name
from resources.repositories import hdf5 as repo


@dataclass
class RegistrationReport:
    """What one registration did, with the phases timed (seconds) for the benchmark."""

    seen: int = 0
    skipped_unchanged: int = 0
    headers: list[SubbandHeader] = field(default_factory=list)
    failures: list[FailedFile] = field(default_factory=list)
    result: repo.RegisterResult = field(default_factory=repo.RegisterResult)
    groups: dict[dt.date, list[SubbandGroup]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def register_paths(
    bind: Bind,
    paths: Iterable[str | Path],
    *,
    tolerance_s: float = GROUP_TOLERANCE_S,
    recheck: bool = False,
    workers: int | None = None,
) -> RegistrationReport:
    """Register these files (headers of new or changed ones only) and re-group their days.

    `recheck=True` reads every header even when size and mtime are unchanged (after a reader
    fix, say). The days re-grouped are the UTC dates in the names of the files read, readable
    or not (a file that became unreadable leaves its group, which must then be recomputed).
    `workers` goes to `read_headers` (default: a process pool, one per CPU, for big batches).
    """
    report = RegistrationReport()
    clock = time.perf_counter()
    stats: dict[str, os.stat_result] = {}
    vanished: list[FailedFile] = []
    for path in dict.fromkeys(str(p) for p in paths):
        try:
            stats[path] = os.stat(path)
        except OSError as exc:
            error = HDF5FileAccessError(path, f"cannot stat: {one_line(exc.strerror or exc)}")
            vanished.append(failed_file(path, error))
    report.seen = len(stats) + len(vanished)
    known = {} if recheck else repo.known_files(bind, list(stats))
    todo = [
        path
        for path, info in stats.items()
        if recheck or known.get(path) != (info.st_size, info.st_mtime_ns)
    ]
    report.skipped_unchanged = len(stats) - len(todo)
    report.timings["stat_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    report.headers, failures = read_headers(todo, stats=stats, workers=workers)
    report.failures = failures + vanished
    report.timings["headers_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    report.result = repo.register_files(bind, report.headers, report.failures)
    report.timings["register_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    days = {h.timestamp.date() for h in report.headers}
    for failure in report.failures:
        try:
            days.add(parse_hdf5_name(failure.path).timestamp.date())
        except FileNameError:
            continue  # a name without a date belonged to no group
    report.groups = repo.regroup_days(bind, days, tolerance_s=tolerance_s)
    report.timings["group_s"] = time.perf_counter() - clock
    return report
