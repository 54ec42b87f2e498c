"""What a CASA measurement set says about itself: one `MsSummary`, read with python-casacore.

A measurement set is a directory of CASA tables: the main table (one row per baseline and
integration) and subtables in sub-directories (FIELD, SPECTRAL_WINDOW, OBSERVATION, ...). An
index of the pipeline's measurement sets needs only their headers, so `read_ms` opens four
tables and reads a handful of cells, never a visibility. The one column it may read in full is
the main table's TIME: pyuvdata (the writer of the converted observations) leaves
OBSERVATION's TIME_RANGE at [0, 0], so the time range has to come from the rows themselves
(8 bytes a row in an incremental storage manager, cheap; bench/ms_bench.py measures it).

Failures are typed (resources/errors.py) so a listing of unreadable sets can say which kind:
`NotCasaTableError` when there is no table at all, `CorruptCasaTableError` when casacore cannot
open or read one (it raises `RuntimeError`), `MeasurementSetError` when the tables open but a
part of a measurement set the summary needs is missing or empty.

casacore is imported inside `read_ms`, not at module level: `find_measurement_sets` (what a
sensor calls every tick) then works without paying for the import.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from resources.casa import SECONDS_PER_DAY, TABLE_FILE, find_table_dirs, one_line, table_stat
from resources.errors import CorruptCasaTableError, MeasurementSetError
from resources.models.hdf5 import MJD_EPOCH

if TYPE_CHECKING:
    from casacore.tables import table as Table

SUFFIX = ".ms"
#: The subtables the summary cannot do without (OBSERVATION is optional: TIME is the fallback).
REQUIRED_SUBTABLES = ("FIELD", "SPECTRAL_WINDOW")
#: Our naming convention `<group_id>.ms`: the name starts with the observation's timestamp.
GROUP_FORMAT = "%Y-%m-%dT%H:%M:%S"
_GROUP_PREFIX = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})")


@dataclass(frozen=True)
class MsSummary:
    """The header-level facts of one measurement set, enough to index and select it.

    Times are MJD days (UTC) of the integration centres CASA's TIME holds, unless the
    OBSERVATION table carries a real TIME_RANGE, which is then used as written. `ra_deg`,
    `dec_deg` and `field_name` are the first FIELD row's (the phase centre; our sets have one
    field). `ref_freq_hz` is the lowest REF_FREQUENCY over the spectral windows: the bottom
    window's reference, a stable key whatever the windows' order in the table.
    `size_bytes` and `mtime_ns` (of table.dat, which casacore rewrites whenever the table
    changes) let an index skip sets that have not changed without opening them.
    """

    path: str
    name: str
    start_mjd: float
    end_mjd: float
    mid_mjd: float
    obs_date: dt.date
    field_name: str
    ra_deg: float
    dec_deg: float
    n_spw: int
    n_channels: int
    ref_freq_hz: float
    n_rows: int
    has_corrected_data: bool
    hdf5_group: str | None
    size_bytes: int
    mtime_ns: int


def mjd_to_datetime(mjd: float) -> dt.datetime:
    """UTC datetime of an MJD (days)."""
    return MJD_EPOCH + dt.timedelta(days=mjd)


def datetime_to_mjd(moment: dt.datetime) -> float:
    """MJD (days) of a timezone-aware datetime; naive ones are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - MJD_EPOCH).total_seconds() / SECONDS_PER_DAY


def group_id_from_name(name: str) -> str | None:
    """The observation's group id when `name` starts with a valid `YYYY-MM-DDTHH:MM:SS`.

    Our sets are named `<group_id>.ms` after the HDF5 group they were converted from; a name
    that merely looks like one (month 13) is not taken.
    """
    match = _GROUP_PREFIX.match(name)
    if match is None:
        return None
    try:
        dt.datetime.strptime(match.group(1), GROUP_FORMAT)
    except ValueError:
        return None
    return match.group(1)


def _directory_size(directory: Path) -> int:
    """Bytes of every file under the directory (subtables included), links not followed."""
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # a lock file went away between the listing and the stat
    return total


def _open(ms: Path, subtable: str | None = None) -> Table:
    """Open the main table or a subtable read-only; casacore's RuntimeError becomes
    CorruptCasaTableError naming the measurement set (what a listing of failures keys on)."""
    from casacore.tables import table

    path = ms / subtable if subtable else ms
    what = f"the {subtable} subtable" if subtable else "the main table"
    try:
        return table(str(path), ack=False, readonly=True)
    except RuntimeError as exc:
        raise CorruptCasaTableError(ms, f"cannot open {what}: {one_line(exc)}") from exc


def _time_range(ms: Path, main: Table) -> tuple[float, float]:
    """(start, end) in MJD seconds: OBSERVATION's TIME_RANGE if real, else TIME's min/max."""
    if (ms / "OBSERVATION" / TABLE_FILE).exists():
        with _open(ms, "OBSERVATION") as table:
            if table.nrows() > 0 and "TIME_RANGE" in table.colnames():
                ranges = table.getcol("TIME_RANGE")
                if ranges.size and (ranges > 0).all() and (ranges[:, 1] >= ranges[:, 0]).all():
                    return float(ranges[:, 0].min()), float(ranges[:, 1].max())
    times = main.getcol("TIME")
    return float(times.min()), float(times.max())


def read_ms(path: str | Path) -> MsSummary:
    """The summary of the measurement set at `path` (see `MsSummary`); typed errors only.

    Raises NotCasaTableError (no such directory, or no table.dat), CorruptCasaTableError
    (casacore cannot open or read a table: truncated, damaged) or MeasurementSetError (no
    FIELD or SPECTRAL_WINDOW subtable, either empty, no TIME column, no rows).
    """
    ms = Path(path)
    info = table_stat(ms)
    resolved = ms.resolve()
    for name in REQUIRED_SUBTABLES:
        if not (ms / name / TABLE_FILE).exists():
            raise MeasurementSetError(ms, f"has no {name} subtable")
    try:
        with _open(ms) as main:
            n_rows = int(main.nrows())
            columns = set(main.colnames())
            if "TIME" not in columns:
                raise MeasurementSetError(ms, "the main table has no TIME column")
            if n_rows == 0:
                raise MeasurementSetError(ms, "the main table has no rows")
            start_s, end_s = _time_range(ms, main)
        with _open(ms, "FIELD") as field:
            if field.nrows() == 0:
                raise MeasurementSetError(ms, "the FIELD subtable has no rows")
            ra_rad, dec_rad = (float(v) for v in field.getcell("PHASE_DIR", 0)[0][:2])
            field_name = str(field.getcell("NAME", 0))
        with _open(ms, "SPECTRAL_WINDOW") as spw:
            n_spw = int(spw.nrows())
            if n_spw == 0:
                raise MeasurementSetError(ms, "the SPECTRAL_WINDOW subtable has no rows")
            n_channels = int(spw.getcol("NUM_CHAN").sum())
            ref_freq_hz = float(spw.getcol("REF_FREQUENCY").min())
    except RuntimeError as exc:  # a column or cell casacore cannot read (a damaged data file)
        raise CorruptCasaTableError(ms, f"cannot read: {one_line(exc)}") from exc
    start_mjd = start_s / SECONDS_PER_DAY
    end_mjd = end_s / SECONDS_PER_DAY
    ra_deg = math.degrees(ra_rad) % 360.0
    if ra_deg >= 360.0:  # -1e-17 % 360 rounds to 360.0
        ra_deg = 0.0
    return MsSummary(
        path=str(resolved),
        name=resolved.name,
        start_mjd=start_mjd,
        end_mjd=end_mjd,
        mid_mjd=(start_mjd + end_mjd) / 2.0,
        obs_date=mjd_to_datetime(start_mjd).date(),
        field_name=field_name,
        ra_deg=ra_deg,
        dec_deg=math.degrees(dec_rad),
        n_spw=n_spw,
        n_channels=n_channels,
        ref_freq_hz=ref_freq_hz,
        n_rows=n_rows,
        has_corrected_data="CORRECTED_DATA" in columns,
        hdf5_group=group_id_from_name(resolved.name),
        size_bytes=_directory_size(resolved),
        mtime_ns=info.st_mtime_ns,
    )


def find_measurement_sets(directories: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(every `*.ms` directory under the directories, sorted by name then path; missing dirs).

    `resources.casa.find_table_dirs`: hidden directories skipped, a measurement set not
    descended into (its subtables are tables, not sets); a directory given that is itself named
    `*.ms` counts as found.
    """
    found, missing = find_table_dirs(
        directories, lambda name: name.endswith(SUFFIX), roots_count=True
    )
    return sorted(found, key=lambda p: (p.name, str(p))), missing
