"""Small, valid DSA-110-like UVH5 subband files, written by pyuvdata (the standard writer).

For tests, benchmarks and `contimg sample-data --hdf5` (`generate_sample_hdf5`). Each file is a tiny UVData: a
few antennas, one or two integrations, a few channels of its subband, phased to a sidereal
position at the requested Dec, written with `UVData.write_uvh5`. One observation is 16 such
files whose name timestamps are jittered by up to `max_jitter_s` after the observation start,
as the correlator's are (it finishes the subbands at slightly different times). Helpers make the
cases an operator must see: a missing subband, a duplicate subband, a corrupt (truncated) file
and a file that is not HDF5 at all.

`clone_subband` copies an existing file and moves it in time by patching `time_array` and
`lst_array` with h5py (about 1 ms instead of ~35 ms for a pyuvdata write), which is what lets
the benchmark make a day of 4,608 files in seconds.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from resources.hdf5.headers import JD_MJD_OFFSET
from resources.models.hdf5 import MJD_EPOCH, N_SUBBANDS

if TYPE_CHECKING:
    from pyuvdata import Telescope, UVData

#: DSA-110's band: 16 subbands of 11.71875 MHz between 1311.25 and 1498.75 MHz; sb00 is the
#: highest, and frequencies fall with channel index, as in the correlator's files.
BAND_LOW_HZ = 1.31125e9
SUBBAND_WIDTH_HZ = 11.71875e6
BAND_HIGH_HZ = BAND_LOW_HZ + N_SUBBANDS * SUBBAND_WIDTH_HZ
INTEGRATION_S = 12.884901888  # DSA-110's integration time
#: The Owens Valley site (lon, lat in degrees, height in metres).
SITE = (-118.2834, 37.2339, 1222.0)
SIDEREAL_PER_SOLAR = 1.002737909350795
NAME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def subband_frequencies(subband: int, n_channels: int = 4) -> np.ndarray:
    """Channel centres of one subband in Hz, descending (sb00 holds the top of the band)."""
    if not 0 <= subband < N_SUBBANDS:
        raise ValueError(f"subband {subband} out of range 0-{N_SUBBANDS - 1}")
    top = BAND_HIGH_HZ - subband * SUBBAND_WIDTH_HZ
    width = SUBBAND_WIDTH_HZ / n_channels
    return top - (np.arange(n_channels) + 0.5) * width


def julian_date(moment: dt.datetime) -> float:
    """UTC Julian date of a timezone-aware datetime (UVH5 `time_array` is JD, UTC)."""
    return (moment - MJD_EPOCH).total_seconds() / 86400.0 + JD_MJD_OFFSET


def subband_filename(timestamp: dt.datetime, subband: int) -> str:
    """The correlator's name for a subband file: `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5`."""
    return f"{timestamp.strftime(NAME_FORMAT)}_sb{subband:02d}.hdf5"


@functools.cache
def _telescope(n_ants: int) -> Telescope:
    """A DSA-110-like telescope of `n_ants` antennas on an east-west line (built once)."""
    import astropy.units as u
    from astropy.coordinates import EarthLocation
    from pyuvdata import Telescope

    lon, lat, height = SITE
    location = EarthLocation.from_geodetic(lon=lon * u.deg, lat=lat * u.deg, height=height * u.m)
    positions = {i: np.array([5.75 * i, 0.3 * i, 0.0]) for i in range(n_ants)}
    return Telescope.new(
        name="DSA-110",
        location=location,
        antenna_positions=positions,
        instrument="DSA-110",
        mount_type="fixed",
        update_from_known=False,
    )


def make_uvdata(
    start: dt.datetime,
    subband: int,
    *,
    dec_deg: float = 16.3,
    n_ants: int = 3,
    n_times: int = 2,
    n_channels: int = 4,
) -> UVData:
    """A tiny UVData for one subband starting at `start` (UTC), phased to (LST, `dec_deg`).

    pyuvdata is imported here, not at module level: it takes over a second to import and
    only writers need it (the header reader is h5py alone).
    """
    from astropy.time import Time
    from pyuvdata import UVData

    first = Time(start.astimezone(dt.UTC).replace(tzinfo=None), scale="utc").jd
    times = first + np.arange(n_times) * INTEGRATION_S / 86400.0
    pairs = [(a, b) for a in range(n_ants) for b in range(a + 1, n_ants)]
    uv = UVData.new(
        freq_array=subband_frequencies(subband, n_channels),
        polarization_array=["xx", "yy"],
        telescope=_telescope(n_ants),
        times=times,
        antpairs=pairs,
        do_blt_outer=True,
        time_axis_faster_than_bls=False,
        empty=True,
    )
    uv.vis_units = "uncalib"
    uv.extra_keywords = {"subband": subband}
    uv.phase(
        ra=float(uv.lst_array[0]),
        dec=float(np.deg2rad(dec_deg)),
        epoch="J2000",
        phase_frame="icrs",
        cat_name=f"drift_dec{dec_deg:+.1f}",
    )
    rng = np.random.default_rng(subband)
    shape = uv.data_array.shape
    uv.data_array = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    return uv


def write_subband(
    directory: str | Path,
    timestamp: dt.datetime,
    subband: int,
    *,
    filename: str | None = None,
    **kwargs: float,
) -> Path:
    """Write one subband file named after `timestamp` (its data start there, too)."""
    path = Path(directory) / (filename or subband_filename(timestamp, subband))
    path.parent.mkdir(parents=True, exist_ok=True)
    uv = make_uvdata(timestamp, subband, **kwargs)  # type: ignore[arg-type]
    uv.write_uvh5(str(path), clobber=True)
    return path


def jitter_offsets(subbands: Sequence[int], max_jitter_s: int, seed: int | None) -> dict[int, int]:
    """Whole-second delays of each subband's file after the observation start.

    The earliest file is always at offset 0, so the group id (the earliest timestamp) is the
    start the caller asked for, whatever the seed.
    """
    rng = random.Random(seed)
    offsets = {sb: rng.randint(0, max(max_jitter_s, 0)) for sb in subbands}
    if offsets:
        first = min(offsets.values())
        offsets = {sb: value - first for sb, value in offsets.items()}
    return offsets


def write_observation(
    directory: str | Path,
    start: dt.datetime,
    *,
    subbands: Iterable[int] = range(N_SUBBANDS),
    max_jitter_s: int = 45,
    seed: int | None = 0,
    dec_deg: float = 16.3,
    n_times: int = 2,
    n_channels: int = 4,
) -> list[Path]:
    """One observation: a file per subband, timestamps jittered within `max_jitter_s`."""
    wanted = sorted(set(subbands))
    offsets = jitter_offsets(wanted, max_jitter_s, seed)
    return [
        write_subband(
            directory,
            start + dt.timedelta(seconds=offsets[sb]),
            sb,
            dec_deg=dec_deg,
            n_times=n_times,
            n_channels=n_channels,
        )
        for sb in wanted
    ]


def drop_subband(paths: Iterable[Path], subband: int) -> Path:
    """Delete one subband's file of an observation (the missing-subband case); returns it."""
    for path in paths:
        if path.name.endswith(f"_sb{subband:02d}.hdf5"):
            path.unlink()
            return path
    raise FileNotFoundError(f"no file of subband {subband:02d} among the paths given")


def clone_subband(template: str | Path, destination: str | Path, start: dt.datetime) -> Path:
    """Copy a subband file and move its data to `start`: `time_array` and `lst_array` shifted.

    The LST is advanced at the sidereal rate, which keeps it within pyuvdata's tolerance for a
    shift of a day or so (what the benchmark needs); the name is the caller's. The uvws and
    the phase centre stay the template's, so pyuvdata's full check warns that the uvws do not
    match the new time: right for header-level work, not for imaging.
    """
    dest = Path(destination)
    shutil.copyfile(template, dest)
    with h5py.File(dest, "r+") as handle:
        times = handle["Header/time_array"]
        old = times[()]
        shift_days = julian_date(start) - float(old[0])
        times[...] = old + shift_days
        if "lst_array" in handle["Header"]:
            lsts = handle["Header/lst_array"]
            turn = 2.0 * np.pi * SIDEREAL_PER_SOLAR * shift_days
            lsts[...] = np.mod(lsts[()] + turn, 2.0 * np.pi)
    return dest


def duplicate_subband(path: str | Path, delay_s: int = 5) -> Path:
    """A second file of the same subband `delay_s` later (a correlator re-write); returns it."""
    source = Path(path)
    stamp = dt.datetime.strptime(source.name.split("_sb")[0], NAME_FORMAT).replace(tzinfo=dt.UTC)
    later = stamp + dt.timedelta(seconds=delay_s)
    subband = int(source.name.split("_sb")[1][:2])
    return clone_subband(source, source.with_name(subband_filename(later, subband)), later)


def corrupt_file(path: str | Path, keep_fraction: float = 0.3) -> Path:
    """Truncate a file to a fraction of its size (a copy cut short); mtime moves as it would."""
    target = Path(path)
    size = target.stat().st_size
    with open(target, "r+b") as handle:
        handle.truncate(max(int(size * keep_fraction), 1))
    return target


def write_not_hdf5(path: str | Path, text: str = "this is not an HDF5 file\n") -> Path:
    """A file with a correlator name that holds something else (a stray log, a partial copy)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def write_day_from_templates(
    directory: str | Path,
    day: dt.date,
    *,
    observations: int = 288,
    cadence_s: int = 300,
    max_jitter_s: int = 45,
    seed: int = 0,
    template_dir: str | Path | None = None,
) -> list[Path]:
    """A day of observations made fast: 16 pyuvdata-written templates, then h5py clones.

    Observation k starts at `day` 00:00:00 + k * `cadence_s`; each file is jittered as in
    `write_observation`. Returns the paths in observation, subband order.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    templates_root = Path(template_dir) if template_dir is not None else out / ".templates"
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    templates = write_observation(templates_root, midnight, max_jitter_s=0)
    by_subband = {int(p.name.split("_sb")[1][:2]): p for p in templates}
    paths: list[Path] = []
    for k in range(observations):
        start = midnight + dt.timedelta(seconds=k * cadence_s)
        offsets = jitter_offsets(range(N_SUBBANDS), max_jitter_s, seed * 100_003 + k)
        for sb in range(N_SUBBANDS):
            stamp = start + dt.timedelta(seconds=offsets[sb])
            paths.append(clone_subband(by_subband[sb], out / subband_filename(stamp, sb), stamp))
    if template_dir is None:
        shutil.rmtree(templates_root)
    return paths


@dataclass(frozen=True)
class SampleSubbandFile:
    """One file of `generate_sample_hdf5`, with what an operator should see of it.

    `kind` is `good`, `duplicate` (a second file of a subband in its group) or `corrupt`
    (truncated: listed by `contimg hdf5 failed`, in no group).
    """

    path: Path
    kind: str
    group_id: str
    subband: int


@dataclass(frozen=True)
class SampleObservation:
    """One observation of the sample: its group id and the subbands it should lack."""

    group_id: str
    missing: tuple[int, ...] = ()
    duplicates: tuple[int, ...] = ()


#: The first day's defects (with `broken=True`): observation index -> what is wrong with it.
SAMPLE_MISSING = (1, 7)  # the 2nd observation lacks sb07
SAMPLE_DUPLICATE = (2, 3)  # the 3rd has sb03 twice
SAMPLE_CORRUPT = (3, 11)  # the 4th has sb11 (or the next) truncated, so it lacks that one
SAMPLE_FIRST_OBSERVATION = dt.time(2, 0)
SAMPLE_CADENCE_S = 300


def generate_sample_hdf5(
    directory: str | Path,
    *,
    start: dt.date,
    days: int = 1,
    per_day: int = 4,
    broken: bool = True,
    seed: int = 0,
) -> tuple[list[SampleSubbandFile], list[SampleObservation]]:
    """`contimg sample-data --hdf5`: a few observations a day, every file written by pyuvdata.

    Observations are 5 minutes apart from 02:00 UTC, each subband's timestamp jittered by up
    to 45 s. With `broken` (it needs `per_day` >= 4) the first day shows each case: its 2nd
    observation lacks sb07, its 3rd has a re-write of sb03 5 s after the first, its 4th has
    sb11 truncated (unreadable: in `hdf5_failures`, and that group lacks sb11).
    """
    if broken and per_day < 4:
        raise ValueError("broken sample data needs at least 4 observations per day")
    out = Path(directory)
    files: list[SampleSubbandFile] = []
    observations: list[SampleObservation] = []
    for d in range(days):
        day = start + dt.timedelta(days=d)
        first = dt.datetime.combine(day, SAMPLE_FIRST_OBSERVATION, tzinfo=dt.UTC)
        for k in range(per_day):
            begin = first + dt.timedelta(seconds=k * SAMPLE_CADENCE_S)
            defects = broken and d == 0
            skip = SAMPLE_MISSING[1] if defects and k == SAMPLE_MISSING[0] else None
            subbands = [sb for sb in range(N_SUBBANDS) if sb != skip]
            paths = write_observation(out, begin, subbands=subbands, seed=seed * 1009 + d * 97 + k)
            group_id = begin.strftime(NAME_FORMAT)
            by_subband = {int(p.name.split("_sb")[1][:2]): p for p in paths}
            kinds = dict.fromkeys(by_subband, "good")
            missing: tuple[int, ...] = (skip,) if skip is not None else ()
            duplicates: tuple[int, ...] = ()
            if defects and k == SAMPLE_DUPLICATE[0]:
                sb = SAMPLE_DUPLICATE[1]
                copy = duplicate_subband(by_subband[sb], delay_s=5)
                files.append(SampleSubbandFile(copy, "duplicate", group_id, sb))
                duplicates = (sb,)
            if defects and k == SAMPLE_CORRUPT[0]:
                # Not the earliest file: the group keeps the id of the observation's start.
                earliest = min(paths, key=lambda p: p.name)
                sb = next(
                    sb
                    for sb in (*range(SAMPLE_CORRUPT[1], N_SUBBANDS), *range(SAMPLE_CORRUPT[1]))
                    if by_subband[sb] != earliest
                )
                corrupt_file(by_subband[sb])
                kinds[sb] = "corrupt"
                missing = (sb,)
            files.extend(
                SampleSubbandFile(path, kinds[sb], group_id, sb)
                for sb, path in sorted(by_subband.items())
            )
            observations.append(SampleObservation(group_id, missing, duplicates))
    return files, observations
