"""Schema of the `hdf5` database: raw correlator files, one row per subband file.

Sixteen subband files written within ±60 s of each other form one observation group; the group
id is the ISO timestamp (to the second) of the group's earliest file.

`hdf5_failures` (revision hdf5_0002) holds the files whose header could not be read, with their
typed error: such a file has no trustworthy subband or time, so it cannot be a row of
`hdf5_files` (whose columns are NOT NULL), and it joins no group. A path is in one table or the
other, never both.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from resources.errors import FileNameError
from resources.models._common import new_metadata, utcnow

N_SUBBANDS = 16
GROUP_TOLERANCE_S = 60.0
MJD_EPOCH = dt.datetime(1858, 11, 17, tzinfo=dt.UTC)

_NAME = re.compile(r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(?P<sb>\d{2})\.hdf5$")


class Hdf5Base(DeclarativeBase):
    metadata: MetaData = new_metadata()  # type: ignore[misc]


METADATA = Hdf5Base.metadata


class Hdf5File(Hdf5Base):
    __tablename__ = "hdf5_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    subband: Mapped[int] = mapped_column(Integer)
    timestamp_iso: Mapped[str] = mapped_column(String(32))
    timestamp: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    mjd: Mapped[float] = mapped_column(Double)
    group_id: Mapped[str | None] = mapped_column(String(32))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    ra_deg: Mapped[float | None] = mapped_column(Double)
    dec_deg: Mapped[float | None] = mapped_column(Double)
    # Added by revision hdf5_0002: what the UVH5 header says (resources.hdf5.headers).
    start_mjd: Mapped[float | None] = mapped_column(Double)
    end_mjd: Mapped[float | None] = mapped_column(Double)
    freq_min_hz: Mapped[float | None] = mapped_column(Double)
    freq_max_hz: Mapped[float | None] = mapped_column(Double)
    n_freqs: Mapped[int | None] = mapped_column(Integer)
    n_times: Mapped[int | None] = mapped_column(Integer)
    n_blts: Mapped[int | None] = mapped_column(Integer)
    discovered_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(f"subband >= 0 AND subband < {N_SUBBANDS}", name="subband_range"),
        Index(None, "mjd"),
        Index(None, "group_id", "subband"),
    )


class Hdf5Failure(Hdf5Base):
    """A file under the correlator directories whose header could not be read (hdf5_0002)."""

    __tablename__ = "hdf5_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    # The date in the name when it parses, else the UTC date of the mtime (the night it landed).
    obs_date: Mapped[dt.date | None] = mapped_column(Date)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    error_class: Mapped[str] = mapped_column(String(128))
    error: Mapped[str] = mapped_column(Text)
    discovered_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    __table_args__ = (Index(None, "obs_date"),)


@dataclass(frozen=True)
class Hdf5Name:
    """What a correlator file name says: when it was written and which subband it holds."""

    filename: str
    timestamp: dt.datetime  # UTC, timezone-aware
    subband: int

    @property
    def timestamp_iso(self) -> str:
        return self.timestamp.strftime("%Y-%m-%dT%H:%M:%S")

    @property
    def mjd(self) -> float:
        return (self.timestamp - MJD_EPOCH).total_seconds() / 86400.0


def parse_hdf5_name(path: str | PurePath) -> Hdf5Name:
    """Parse `YYYY-MM-DDTHH:MM:SS_sbNN.hdf5`; FileNameError names the file otherwise."""
    name = PurePath(str(path)).name
    match = _NAME.match(name)
    if match is None:
        raise FileNameError(
            path,
            "not a correlator subband file name",
            hint="Expected YYYY-MM-DDTHH:MM:SS_sbNN.hdf5, e.g. 2025-10-05T12:00:00_sb03.hdf5.",
        )
    subband = int(match["sb"])
    if subband >= N_SUBBANDS:
        raise FileNameError(path, f"subband {subband} out of range 0-{N_SUBBANDS - 1}")
    try:
        stamp = dt.datetime.strptime(match["ts"], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise FileNameError(path, f"impossible timestamp {match['ts']!r}: {exc}") from exc
    return Hdf5Name(filename=name, timestamp=stamp, subband=subband)
