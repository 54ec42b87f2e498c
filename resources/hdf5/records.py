"""What a subband file's header says, and what is kept of a file that could not be read.

Plain records without h5py, so that the repository (and the commands that list groups and
failures) can use them without importing the HDF5 stack; `resources.hdf5.headers` makes them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from resources.models.hdf5 import MJD_EPOCH, Hdf5Name


@dataclass(frozen=True)
class SubbandHeader:
    """What one subband file says about itself: enough to group, index and convert it."""

    path: str
    name: Hdf5Name
    start_mjd: float
    end_mjd: float
    freq_min_hz: float
    freq_max_hz: float
    n_freqs: int
    n_times: int
    n_blts: int
    ra_deg: float | None
    dec_deg: float | None
    size_bytes: int
    mtime_ns: int

    # The grouping code sorts on these; repeating them here keeps it free of `.name.` chains.
    @property
    def timestamp(self) -> dt.datetime:
        return self.name.timestamp

    @property
    def subband(self) -> int:
        return self.name.subband

    @property
    def start(self) -> dt.datetime:
        return mjd_to_datetime(self.start_mjd)

    @property
    def end(self) -> dt.datetime:
        return mjd_to_datetime(self.end_mjd)


@dataclass(frozen=True)
class FailedFile:
    """A file whose header could not be read: it joins no group and is listed with its error.

    `obs_date` is the date in the name when the name parses, else the UTC date of the file's
    mtime (the night it landed), so a misnamed file still shows up under a day.
    """

    path: str
    filename: str
    error_class: str
    error: str
    obs_date: dt.date | None
    size_bytes: int | None
    mtime_ns: int | None


def mjd_to_datetime(mjd: float) -> dt.datetime:
    """UTC datetime of an MJD (microsecond resolution is far finer than any header needs)."""
    return MJD_EPOCH + dt.timedelta(days=mjd)
