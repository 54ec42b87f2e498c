"""Index the measurement sets under the watched directories: the one call a sensor, the asset
and `contimg ms scan` make, so the three cannot disagree on what is indexed.

Every `*.ms` directory found (`resources.ms.reader.find_measurement_sets`) is compared with the
database by the mtime of its `table.dat`; only new or changed ones are opened with casacore. A
readable one is upserted into `ms_index`, an unreadable one recorded in `ms_failures` with its
typed error (one line naming the directory), and the images of the days touched are linked to
their MS, all in one transaction: a scan killed half-way leaves the database as it was.
Plain code over a SQLAlchemy bind; the SQL is in `resources.repositories.products`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from resources.casa import TABLE_FILE
from resources.engines import Bind, transaction
from resources.errors import CasaTableError
from resources.ms.reader import MsSummary, find_measurement_sets, group_id_from_name, read_ms
from resources.repositories import products as repo


@dataclass(frozen=True)
class FailedMs:
    """A directory that could not be read, with the typed error's class and message."""

    path: str
    obs_date: dt.date | None
    mtime_ns: int | None
    error_class: str
    error: str


@dataclass
class MsScanResult:
    """What one scan found, read and recorded (phases timed in seconds)."""

    directories: list[Path]
    missing_dirs: list[Path] = field(default_factory=list)
    found: int = 0
    unchanged: int = 0
    #: New or changed MSs left for the next scan (over `max_reads`).
    deferred: int = 0
    read: list[MsSummary] = field(default_factory=list)
    failures: list[FailedMs] = field(default_factory=list)
    images_linked: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def days(self) -> list[dt.date]:
        """The observation days whose index this scan changed."""
        days = {s.obs_date for s in self.read}
        days.update(f.obs_date for f in self.failures if f.obs_date is not None)
        return sorted(days)

    def summary(self) -> str:
        """One line for a tick's log, a skip reason or the CLI."""
        parts = [
            f"{self.found} measurement sets under {len(self.directories)} "
            + ("directory" if len(self.directories) == 1 else "directories"),
            f"{len(self.read)} indexed",
            f"{self.unchanged} unchanged",
            f"{len(self.failures)} unreadable",
            f"{self.images_linked} image links changed",
        ]
        if self.deferred:
            parts.append(f"{self.deferred} left for the next scan")
        if self.missing_dirs:
            parts.append("missing dirs: " + ", ".join(str(d) for d in self.missing_dirs))
        return ", ".join(parts)


def name_date(path: str | Path) -> dt.date | None:
    """The UTC date an MS's name starts with (`2026-01-01T00:05:00.ms`), else None."""
    group = group_id_from_name(Path(path).name)
    return dt.date.fromisoformat(group[:10]) if group else None


def table_mtime_ns(path: str | Path) -> int | None:
    """mtime of the main table's `table.dat` (None when there is none): casacore rewrites it
    whenever the MS changes, which a directory's own mtime does not show."""
    try:
        return os.stat(Path(path) / TABLE_FILE).st_mtime_ns
    except OSError:
        return None


def _failure(path: str, mtime_ns: int | None, error: CasaTableError) -> FailedMs:
    when = name_date(path)
    if when is None and mtime_ns is not None:
        when = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC).date()
    return FailedMs(path, when, mtime_ns, type(error).__name__, str(error))


def scan_ms(
    bind: Bind,
    directories: Iterable[Path],
    *,
    names_starting: Sequence[str] = (),
    max_reads: int | None = None,
    recheck: bool = False,
) -> MsScanResult:
    """Index the new or changed MSs under `directories` and link the images of their days.

    `names_starting` keeps the MSs whose name starts with one of these prefixes (the asset
    passes its run's days); `max_reads` bounds the MSs opened, oldest name first (a sensor
    tick must stay short); `recheck` opens every one, changed or not.
    """
    dirs = list(directories)
    clock = time.perf_counter()
    found, missing = find_measurement_sets(dirs)
    # The index holds resolved paths (`read_ms` resolves): compare like with like.
    paths = [p.resolve() for p in found]
    if names_starting:
        prefixes = tuple(names_starting)
        paths = [p for p in paths if p.name.startswith(prefixes)]
    result = MsScanResult(directories=dirs, missing_dirs=missing, found=len(paths))
    with transaction(bind) as conn:
        known = repo.known_ms(conn, [str(p) for p in paths])
    mtimes = {str(p): table_mtime_ns(p) for p in paths}
    todo = [
        str(p) for p in paths if recheck or str(p) not in known or known[str(p)] != mtimes[str(p)]
    ]
    if max_reads is not None and len(todo) > max_reads:
        result.deferred = len(todo) - max_reads
        todo = todo[:max_reads]
    result.unchanged = len(paths) - len(todo) - result.deferred
    result.timings["find_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    for path in todo:
        try:
            result.read.append(read_ms(path))
        except CasaTableError as exc:
            result.failures.append(_failure(path, mtimes[path], exc))
    result.timings["read_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    with transaction(bind) as conn:
        repo.upsert_ms(conn, [dataclasses.asdict(s) for s in result.read])
        repo.record_ms_failures(conn, [dataclasses.asdict(f) for f in result.failures])
        result.images_linked = repo.link_images_to_ms(conn, {s.obs_date for s in result.read})
    result.timings["record_s"] = time.perf_counter() - clock
    return result
