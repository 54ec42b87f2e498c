"""Find the calibration tables under the watched directories and register the new ones.

What `caltables_sensor` and `contimg cal scan` share, so the two cannot disagree on which
directories count: every directory under CONTIMG_CALTABLE_DIRS (recursively, hidden ones such
as a solver's scratch left out) whose name ends with one of `CALTABLE_SUFFIXES`; a caltable's
own subtables are not searched. A table already registered (any status) is not read again, so a
tick over an unchanged directory costs one `os.walk` and one query.

Each new table joins the set named by its file name without the suffix
(`2026-01-01_3C286_bpcal` -> set `2026-01-01_3C286`), valid over its TIME range. A table that
cannot be read, or whose registration the registry refuses (an overlap with another active
set), is a failure of the scan, reported, never raised: the other tables are registered.
Plain code over a SQLAlchemy bind; the rules are `resources.repositories.cal_registry`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from resources.calibration.tables import CaltableInfo, read_caltable
from resources.casa import find_table_dirs
from resources.engines import Bind
from resources.errors import CalibrationConflictError, CasaTableError, FileNameError
from resources.models.cal_registry import CALTABLE_SUFFIXES
from resources.repositories import cal_registry as repo

SUFFIXES: tuple[str, ...] = tuple(sorted(CALTABLE_SUFFIXES, key=len, reverse=True))


@dataclass(frozen=True)
class ScanFailure:
    """A table the scan could not register: unreadable, or refused by the registry."""

    path: str
    error_class: str
    message: str


@dataclass
class ScanResult:
    """What one scan found and registered."""

    directories: list[Path]
    missing_dirs: list[Path] = field(default_factory=list)
    found: int = 0
    #: Already registered before this scan (not read again).
    known: int = 0
    registered: list[str] = field(default_factory=list)
    failures: list[ScanFailure] = field(default_factory=list)
    #: Set names that got at least one new table.
    sets: list[str] = field(default_factory=list)

    @property
    def unreadable(self) -> list[ScanFailure]:
        return [f for f in self.failures if f.error_class != CalibrationConflictError.__name__]

    @property
    def refused(self) -> list[ScanFailure]:
        return [f for f in self.failures if f.error_class == CalibrationConflictError.__name__]

    def summary(self) -> str:
        """One line for a tick's skip reason or the CLI."""
        parts = [
            f"{self.found} calibration tables under {len(self.directories)} "
            + ("directory" if len(self.directories) == 1 else "directories"),
            f"{len(self.registered)} new",
            f"{self.known} known",
            f"{len(self.unreadable)} unreadable",
            f"{len(self.refused)} refused (overlap)",
        ]
        if self.missing_dirs:
            parts.append("missing dirs: " + ", ".join(str(d) for d in self.missing_dirs))
        return ", ".join(parts)


def set_name_from_path(path: str | Path) -> str:
    """The file name without its caltable suffix: the default set of a table."""
    name = Path(str(path).rstrip("/")).name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def is_caltable_name(name: str) -> bool:
    return not name.startswith(".") and name.endswith(SUFFIXES)


def find_caltables(directories: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(every caltable directory under `directories`, sorted by path; the missing dirs).

    `resources.casa.find_table_dirs`: hidden directories skipped, a caltable's own subtables
    (FIELD, ANTENNA...) not descended into.
    """
    found, missing = find_table_dirs(directories, is_caltable_name)
    return sorted(found, key=str), missing


def scan_directories(
    bind: Bind,
    directories: Iterable[Path],
    *,
    set_name_of: Callable[[str], str] = set_name_from_path,
) -> ScanResult:
    """Register the calibration tables under `directories` that the registry does not know.

    Tables are registered set by set (one transaction each), so an overlap refusing one set
    leaves the others registered; its tables are recorded as failures.
    """
    dirs = list(directories)
    paths, missing = find_caltables(dirs)
    result = ScanResult(directories=dirs, missing_dirs=missing, found=len(paths))
    resolved = [str(p.resolve()) for p in paths]
    known = repo.known_paths(bind, resolved)
    result.known = len(known)
    by_set: dict[str, list[CaltableInfo]] = {}
    for path in resolved:
        if path in known:
            continue
        try:
            info = read_caltable(path)
        except (CasaTableError, FileNameError) as exc:
            result.failures.append(ScanFailure(path, type(exc).__name__, str(exc)))
            continue
        by_set.setdefault(set_name_of(info.path), []).append(info)
    for set_name, infos in sorted(by_set.items()):
        try:
            registered = repo.register_caltables(bind, infos, set_name=set_name)
        except CalibrationConflictError as exc:
            result.failures.extend(
                ScanFailure(info.path, type(exc).__name__, str(exc)) for info in infos
            )
            continue
        result.registered.extend(registered.registered)
        if registered.registered:
            result.sets.append(set_name)
    return result
