"""Small but real CASA calibration tables, written with python-casacore, for tests and samples.

A table written here opens in casacore (and CASA) like a solver's output: the main table has the
columns of a NewCalTable (TIME in MJD seconds, FIELD_ID, SPECTRAL_WINDOW_ID, ANTENNA1, ANTENNA2,
CPARAM, or FPARAM for a delay (K) table, FLAG, SNR), the keywords `ParType`, `VisCal` and
`RefAnt`, and a FIELD subtable with the calibrator's NAME. It holds one solution per antenna at
each of a few times spread over the validity window, so its TIME range is [start, end].
Also: the two broken tables a scan must survive (no table.dat; a truncated table.dat).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from casacore.tables import makearrcoldesc, makescacoldesc, maketabdesc, table

from resources.models.cal_registry import CALTABLE_SUFFIXES

SECONDS_PER_DAY = 86400.0
#: Table type -> (VisCal keyword, parameter column: FPARAM for delays, CPARAM for gains).
_VISCAL: dict[str, tuple[str, str]] = {
    "K": ("K Jones", "FPARAM"),
    "BA": ("B Jones", "CPARAM"),
    "BP": ("B Jones", "CPARAM"),
    "GA": ("G Jones", "CPARAM"),
    "GP": ("G Jones", "CPARAM"),
    "2G": ("G Jones", "CPARAM"),
    "FLUX": ("G Jones", "CPARAM"),
}
_SUFFIX_OF: dict[str, str] = {kind: suffix for suffix, (kind, _order) in CALTABLE_SUFFIXES.items()}
N_TIMES = 3
N_CHANNELS = 4
N_POLARIZATIONS = 2


def suffix_of(table_type: str) -> str:
    """The file-name suffix of a table type (`BP` -> `_bpcal`)."""
    return _SUFFIX_OF[table_type]


def _type_of(path: Path) -> str:
    name = path.name
    for suffix in sorted(CALTABLE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return CALTABLE_SUFFIXES[suffix][0]
    return "GP"  # a test may want a table with a name the registry refuses


def write_caltable(
    path: str | Path,
    start_mjd: float,
    end_mjd: float,
    *,
    n_ants: int = 4,
    field: str = "3C286",
    refant: str | None = "pad103",
    table_type: str | None = None,
) -> Path:
    """Write a calibration table at `path` whose TIME column spans [start_mjd, end_mjd].

    The type (and so the parameter column) follows the file-name suffix unless `table_type` is
    given. Overwrites nothing: casacore refuses an existing table, which is what a test wants.
    """
    target = Path(path)
    kind = table_type or _type_of(target)
    viscal, param_column = _VISCAL[kind]
    n_times = 1 if end_mjd == start_mjd else N_TIMES
    n_chan = 1 if kind == "K" else N_CHANNELS
    nrow = n_times * n_ants
    param_type = "float" if param_column == "FPARAM" else "complex"
    desc = maketabdesc(
        [
            makescacoldesc("TIME", 0.0, keywords={"QuantumUnits": ["s"]}),
            makescacoldesc("FIELD_ID", 0),
            makescacoldesc("SPECTRAL_WINDOW_ID", 0),
            makescacoldesc("ANTENNA1", 0),
            makescacoldesc("ANTENNA2", -1),
            makearrcoldesc(param_column, 0.0 if param_type == "float" else 0j, ndim=2),
            makearrcoldesc("FLAG", False, ndim=2),
            makearrcoldesc("SNR", 0.0, ndim=2),
        ]
    )
    times = np.linspace(start_mjd, end_mjd, n_times) * SECONDS_PER_DAY
    rng = np.random.default_rng(n_ants)
    shape = (nrow, n_chan, N_POLARIZATIONS)
    if param_type == "float":
        params: np.ndarray = rng.normal(0.0, 2.0, shape)
    else:
        phases = rng.uniform(-np.pi, np.pi, shape)
        params = rng.uniform(0.8, 1.2, shape) * np.exp(1j * phases)
    main = table(str(target), desc, nrow=nrow, ack=False)
    try:
        main.putcol("TIME", np.repeat(times, n_ants))
        main.putcol("FIELD_ID", np.zeros(nrow, dtype=np.int32))
        main.putcol("SPECTRAL_WINDOW_ID", np.zeros(nrow, dtype=np.int32))
        main.putcol("ANTENNA1", np.tile(np.arange(n_ants, dtype=np.int32), n_times))
        main.putcol("ANTENNA2", np.full(nrow, 0, dtype=np.int32))
        main.putcol(param_column, params)
        main.putcol("FLAG", np.zeros(shape, dtype=bool))
        main.putcol("SNR", rng.uniform(20.0, 200.0, shape))
        main.putkeyword("ParType", "Float" if param_type == "float" else "Complex")
        main.putkeyword("VisCal", viscal)
        main.putkeyword("MSName", f"{field}.ms")
        if refant is not None:
            main.putkeyword("RefAnt", refant)
        field_desc = maketabdesc([makescacoldesc("NAME", "")])
        subtable = table(str(target / "FIELD"), field_desc, nrow=1, ack=False)
        try:
            subtable.putcol("NAME", [field])
        finally:
            subtable.close()
        main.putkeyword("FIELD", f"Table: {target / 'FIELD'}")
    finally:
        main.close()
    return target


def write_sample_set(
    directory: str | Path,
    name: str,
    start_mjd: float,
    end_mjd: float,
    types: Sequence[str] = ("K", "BP", "GP"),
    *,
    field: str = "3C286",
) -> list[Path]:
    """Write `<name>_kcal`, `<name>_bpcal`, `<name>_gpcal` (or the given types) in `directory`."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    return [
        write_caltable(target / f"{name}{suffix_of(kind)}", start_mjd, end_mjd, field=field)
        for kind in types
    ]


def write_broken_caltable(path: str | Path, how: str = "truncated") -> Path:
    """A calibration table a reader must refuse with one line: `how` is `no-table-dat` (a
    directory without table.dat) or `truncated` (a real table whose table.dat is cut short)."""
    target = Path(path)
    if how == "no-table-dat":
        target.mkdir(parents=True)
        (target / "table.f0").write_bytes(b"\0" * 64)
        return target
    if how != "truncated":
        raise ValueError(f"how={how!r}; expected 'truncated' or 'no-table-dat'")
    write_caltable(target, 61000.0, 61000.5)
    dat = target / "table.dat"
    dat.write_bytes(dat.read_bytes()[:40])
    return target
