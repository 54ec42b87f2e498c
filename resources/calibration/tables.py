"""Read what the registry needs from one calibration table (a CASA table directory).

`read_caltable` is the one reader the CLI (`contimg cal register`, `cal scan`), the sensor and
the asset checks share, so they agree on a table's type, window and field. It opens the table
read-only and always closes it; every way it can fail is one typed, one-line error naming the
path (resources/errors.py), never a casacore traceback:

* `NotCasaTableError`: the path is missing, not a directory, or holds no table.dat;
* `CorruptCasaTableError`: casacore cannot open or read it (a truncated table.dat, say);
* `CaltableError`: it opens but has no TIME column or no rows, so it has no validity window;
* `FileNameError`: the name has no known suffix (`caltable_type_from_path`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casacore.tables import table

from resources.casa import SECONDS_PER_DAY, one_line, table_stat
from resources.errors import CaltableError, CorruptCasaTableError
from resources.models.cal_registry import caltable_type_from_path

#: Keywords under which writers record the reference antenna (CASA itself keeps it per row).
REFANT_KEYWORDS = ("RefAnt", "REFANT", "refant")
CAL_FIELD_MAX = 128


@dataclass(frozen=True)
class CaltableInfo:
    """What the registry records about one calibration table, read from the table itself."""

    path: str
    table_type: str
    apply_order: int
    start_mjd: float
    end_mjd: float
    n_rows: int
    cal_field: str | None
    refant: str | None
    #: Size and mtime of table.dat, so a caller can tell that the table was rewritten.
    size_bytes: int
    mtime_ns: int


def _field_names(path: Path, field_ids: list[int]) -> str | None:
    """The FIELD subtable's names of the rows' fields, comma-separated; None without one."""
    subtable = path / "FIELD"
    if not (subtable / "table.dat").is_file():
        return None
    names_table = table(str(subtable), ack=False, readonly=True)
    try:
        if "NAME" not in names_table.colnames():
            return None
        names: list[str] = list(names_table.getcol("NAME"))
    finally:
        names_table.close()
    chosen = [names[i] for i in field_ids if 0 <= i < len(names) and names[i]]
    return ",".join(chosen)[:CAL_FIELD_MAX] or None


def _refant(keywords: dict[str, Any]) -> str | None:
    for key in REFANT_KEYWORDS:
        value = keywords.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def read_caltable(path: str | Path) -> CaltableInfo:
    """The type, apply order, TIME range (MJD), field and refant of the table at `path`.

    The type comes from the file name first (FileNameError before anything is opened): a table
    the registry cannot order is refused however readable it is.
    """
    resolved = Path(path).expanduser().resolve()
    table_type, apply_order = caltable_type_from_path(resolved)
    stat = table_stat(resolved)
    try:
        main = table(str(resolved), ack=False, readonly=True)
    except RuntimeError as exc:
        raise CorruptCasaTableError(resolved, f"casacore cannot read it: {one_line(exc)}") from None
    try:
        if "TIME" not in main.colnames():
            raise CaltableError(resolved, "has no TIME column")
        n_rows = int(main.nrows())
        if n_rows == 0:
            raise CaltableError(resolved, "has no rows")
        times = main.getcol("TIME")
        field_ids = (
            sorted({int(i) for i in main.getcol("FIELD_ID")})
            if "FIELD_ID" in main.colnames()
            else []
        )
        keywords = main.getkeywords()
        cal_field = _field_names(resolved, field_ids)
    except RuntimeError as exc:
        raise CorruptCasaTableError(resolved, f"casacore cannot read it: {one_line(exc)}") from None
    finally:
        main.close()
    return CaltableInfo(
        path=str(resolved),
        table_type=table_type,
        apply_order=apply_order,
        start_mjd=float(times.min()) / SECONDS_PER_DAY,
        end_mjd=float(times.max()) / SECONDS_PER_DAY,
        n_rows=n_rows,
        cal_field=cal_field,
        refant=_refant(keywords),
        size_bytes=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )
