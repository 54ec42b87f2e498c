"""What the readers of CASA tables share: measurement sets (`resources.ms`) and calibration tables
(`resources.calibration`) are both directories holding a `table.dat`.

One home for the checks before casacore opens anything, the one-line form of casacore's
messages, the walk that finds table directories under watched directories (a table is not
descended into: its subtables are tables, not new finds), and CASA's time unit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from resources.errors import NotCasaTableError

TABLE_FILE = "table.dat"
#: CASA's TIME columns hold MJD in seconds.
SECONDS_PER_DAY = 86400.0


def table_stat(path: Path) -> os.stat_result:
    """The stat of `path/table.dat`, or NotCasaTableError naming the path and why there is no
    table (missing, not a directory, no table.dat)."""
    if not path.exists():
        raise NotCasaTableError(path, "does not exist")
    if not path.is_dir():
        raise NotCasaTableError(path, "is not a directory (a CASA table is a directory)")
    try:
        return os.stat(path / TABLE_FILE)
    except FileNotFoundError:
        raise NotCasaTableError(path, f"holds no {TABLE_FILE}, so it is not a CASA table") from None
    except OSError as exc:
        raise NotCasaTableError(path, f"cannot stat {TABLE_FILE}: {exc.strerror}") from exc


def one_line(exc: BaseException) -> str:
    """casacore's message on one line (some of its messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def find_table_dirs(
    directories: Iterable[Path], is_table: Callable[[str], bool], *, roots_count: bool = False
) -> tuple[list[Path], list[Path]]:
    """(the directories under `directories` whose name `is_table` accepts; the missing dirs).

    `os.walk` without following links; hidden directories are skipped (a writer's staging) and
    a found table is not descended into. With `roots_count`, a directory given that is itself a
    table counts as found. Unordered: each caller sorts as its listing wants.
    """
    found: dict[str, Path] = {}
    missing: list[Path] = []
    for directory in map(Path, directories):
        if not directory.is_dir():
            missing.append(directory)
            continue
        if roots_count and is_table(directory.name):
            found[str(directory)] = directory
            continue
        for root, dirs, _files in os.walk(directory):
            keep = []
            for name in dirs:
                if name.startswith("."):
                    continue
                if is_table(name):
                    path = os.path.join(root, name)
                    found[path] = Path(path)
                else:
                    keep.append(name)
            dirs[:] = sorted(keep)
    return list(found.values()), missing
