"""Small but real measurement sets, written by pyuvdata (the standard writer), for tests,
benchmarks and sample data.

One set is one observation as the conversion step makes it: the subbands of
`resources.hdf5.synthetic.make_uvdata` (a few antennas, integrations and channels each, phased
to (LST, Dec)) concatenated along frequency with `UVData.fast_concat` and written with
`UVData.write_ms` (which needs python-casacore) to `<directory>/<group_id>.ms`, the group id
being the observation's start `YYYY-MM-DDTHH:MM:SS`. By default the subbands share one
spectral window (as a combined DSA-110 set does); `spw_per_subband=True` gives each subband its
own. `calibrated=True` adds a CORRECTED_DATA column the way CASA does before applycal fills it.

The broken cases an index must name: a `.ms` directory holding no tables, a set whose
table.dat is truncated (a copy cut short), and one without a SPECTRAL_WINDOW subtable.
`generate_sample_ms` makes a few days of both, named like the HDF5 sample's groups.

pyuvdata and casacore are imported inside the functions: pyuvdata takes seconds to import and
only writers need it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from resources.hdf5.synthetic import (
    NAME_FORMAT,
    SAMPLE_CADENCE_S,
    SAMPLE_FIRST_OBSERVATION,
    corrupt_file,
    make_uvdata,
)
from resources.models.hdf5 import N_SUBBANDS

if TYPE_CHECKING:
    from pyuvdata import UVData

BrokenKind = Literal["no_tables", "truncated", "no_spectral_window"]
BROKEN_KINDS: tuple[BrokenKind, ...] = ("no_tables", "truncated", "no_spectral_window")


def ms_name(start: dt.datetime) -> str:
    """Our name of the set of the observation starting at `start`: `<group_id>.ms`."""
    return f"{start.astimezone(dt.UTC).strftime(NAME_FORMAT)}.ms"


def make_ms_uvdata(
    start: dt.datetime,
    *,
    subbands: Iterable[int] = range(N_SUBBANDS),
    dec_deg: float = 16.3,
    n_ants: int = 3,
    n_times: int = 2,
    n_channels: int = 4,
    spw_per_subband: bool = False,
) -> UVData:
    """The subbands of one observation as one UVData, in subband order (frequency descending).

    With `spw_per_subband` each subband becomes spectral window number `subband`, so the
    written set has one SPECTRAL_WINDOW row per subband instead of one in all.
    """
    wanted = sorted(set(subbands))
    if not wanted:
        raise ValueError("a measurement set needs at least one subband")
    parts = []
    for subband in wanted:
        uv = make_uvdata(
            start, subband, dec_deg=dec_deg, n_ants=n_ants, n_times=n_times, n_channels=n_channels
        )
        if spw_per_subband:
            uv.spw_array = uv.spw_array * 0 + subband
            uv.flex_spw_id_array = uv.flex_spw_id_array * 0 + subband
        parts.append(uv)
    combined = parts[0]
    if len(parts) > 1:
        combined = parts[0].fast_concat(parts[1:], "freq", inplace=False)
    return combined


def add_corrected_data(ms: str | Path) -> Path:
    """Add a CORRECTED_DATA column holding a copy of DATA, as CASA does before applycal.

    The column gets DATA's shape in its own tiled storage manager (what casacore's
    `addImagingColumns` does), so the set looks like one calibrated in place.
    """
    from casacore.tables import makearrcoldesc, maketabdesc, table

    path = Path(ms)
    with table(str(path), ack=False, readonly=False) as main:
        data = main.getcol("DATA")
        desc = makearrcoldesc(
            "CORRECTED_DATA",
            0j,
            valuetype="complex",
            ndim=2,
            shape=list(data.shape[1:]),
            datamanagertype="TiledShapeStMan",
            datamanagergroup="TiledCorrected",
            comment="The data column, calibrated",
        )
        dminfo = {"TYPE": "TiledShapeStMan", "NAME": "TiledCorrected", "SPEC": {}}
        main.addcols(maketabdesc(desc), dminfo)
        main.putcol("CORRECTED_DATA", data)
    return path


def _write(uv: UVData, path: Path) -> None:
    """`UVData.write_ms`, its two expected warnings silenced.

    pyuvdata warns that CASA may ignore the units 'uncalib' (true of every synthetic set) and
    numpy warns from inside its writer about `where` without `out`; neither is ours to fix.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*units of the data are uncalib.*")
        warnings.filterwarnings("ignore", message=".*'where' used without 'out'.*")
        uv.write_ms(str(path), clobber=True)


def write_ms(
    directory: str | Path,
    start: dt.datetime,
    *,
    subbands: Iterable[int] = range(N_SUBBANDS),
    dec_deg: float = 16.3,
    calibrated: bool = False,
    name: str | None = None,
    n_ants: int = 3,
    n_times: int = 2,
    n_channels: int = 4,
    spw_per_subband: bool = False,
) -> Path:
    """Write one observation's set to `<directory>/<name or group_id.ms>`; returns its path.

    The data start at `start` (the first integration's centre); an existing set of that name
    is replaced. See `make_ms_uvdata` for the layout and `add_corrected_data` for `calibrated`.
    """
    path = Path(directory) / (name or ms_name(start))
    uv = make_ms_uvdata(
        start,
        subbands=subbands,
        dec_deg=dec_deg,
        n_ants=n_ants,
        n_times=n_times,
        n_channels=n_channels,
        spw_per_subband=spw_per_subband,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.rmtree(path)
    _write(uv, path)
    if calibrated:
        add_corrected_data(path)
    return path


# --- broken sets ------------------------------------------------------------------------------


def write_ms_without_tables(
    directory: str | Path, start: dt.datetime, *, name: str | None = None
) -> Path:
    """A `.ms` directory holding no table (a conversion that died before writing any)."""
    path = Path(directory) / (name or ms_name(start))
    path.mkdir(parents=True, exist_ok=True)
    (path / "conversion.log").write_text("converter killed before the first table\n")
    return path


def truncate_table(ms: str | Path, keep_fraction: float = 0.3) -> Path:
    """Truncate a set's table.dat to a fraction of its size (a copy cut short)."""
    corrupt_file(Path(ms) / "table.dat", keep_fraction)
    return Path(ms)


def drop_subtable(
    ms: str | Path, subtable: str = "SPECTRAL_WINDOW", *, keyword: bool = True
) -> Path:
    """Delete a subtable's directory and, with `keyword`, the main table's reference to it.

    Without the keyword casacore still opens the main table; with it left dangling it does too
    (subtables are opened on demand), so both read as a missing subtable.
    """
    path = Path(ms)
    shutil.rmtree(path / subtable)
    if keyword:
        from casacore.tables import table

        with table(str(path), ack=False, readonly=False) as main:
            if subtable in main.getkeywords():
                main.removekeyword(subtable)
    return path


def write_broken_ms(
    directory: str | Path,
    start: dt.datetime,
    kind: BrokenKind,
    *,
    name: str | None = None,
    subbands: Iterable[int] = (0, 1),
) -> Path:
    """One broken set of `kind` (`BROKEN_KINDS`); the real ones start as two-subband sets."""
    if kind not in BROKEN_KINDS:
        raise ValueError(f"unknown broken kind {kind!r}; expected one of {', '.join(BROKEN_KINDS)}")
    if kind == "no_tables":
        return write_ms_without_tables(directory, start, name=name)
    path = write_ms(directory, start, subbands=subbands, name=name)
    if kind == "truncated":
        return truncate_table(path)
    return drop_subtable(path, "SPECTRAL_WINDOW")


# --- sample data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleMeasurementSet:
    """One set of `generate_sample_ms`: `kind` is `good`, `calibrated` or a `BrokenKind`."""

    path: Path
    kind: str
    group_id: str


def generate_sample_ms(
    directory: str | Path,
    *,
    start: dt.date,
    days: int = 1,
    per_day: int = 4,
    broken: bool = True,
) -> list[SampleMeasurementSet]:
    """Sample measurement sets named like the HDF5 sample's groups, every one pyuvdata-written.

    Observation k of a day starts at 02:00 UTC + k x 5 min (as in
    `resources.hdf5.synthetic.generate_sample_hdf5`, so the group ids match); every second one
    is calibrated (CORRECTED_DATA). With `broken`, the first day also gets one set of each
    `BROKEN_KINDS` in the slots after its last observation, for an index's failure listing.
    """
    out = Path(directory)
    sets: list[SampleMeasurementSet] = []
    for d in range(days):
        day = start + dt.timedelta(days=d)
        first = dt.datetime.combine(day, SAMPLE_FIRST_OBSERVATION, tzinfo=dt.UTC)
        slots = [first + dt.timedelta(seconds=k * SAMPLE_CADENCE_S) for k in range(per_day)]
        for k, begin in enumerate(slots):
            calibrated = k % 2 == 1
            path = write_ms(out, begin, calibrated=calibrated)
            kind = "calibrated" if calibrated else "good"
            sets.append(SampleMeasurementSet(path, kind, begin.strftime(NAME_FORMAT)))
        if broken and d == 0:
            for j, broken_kind in enumerate(BROKEN_KINDS):
                begin = first + dt.timedelta(seconds=(per_day + j) * SAMPLE_CADENCE_S)
                path = write_broken_ms(out, begin, broken_kind)
                sets.append(SampleMeasurementSet(path, broken_kind, begin.strftime(NAME_FORMAT)))
    return sets
