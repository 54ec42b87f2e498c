"""Schema of the `hdf5` database: raw correlator files, one row per subband file.

Sixteen subband files written within ±60 s of each other form one observation group; the group
id is the ISO timestamp (to the second) of the group's earliest file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
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


def assign_groups(
    names: Iterable[Hdf5Name], tolerance_s: float = GROUP_TOLERANCE_S
) -> dict[str, str]:
    """Map each file name to its observation group id.

    Files sorted by time join the current group while they lie within `tolerance_s` of the
    group's first file and its subband is not already taken; otherwise they start a new group.
    """
    groups: dict[str, str] = {}
    start: dt.datetime | None = None
    group_id = ""
    taken: set[int] = set()
    for item in sorted(names, key=lambda n: (n.timestamp, n.subband)):
        if (
            start is None
            or (item.timestamp - start).total_seconds() > tolerance_s
            or item.subband in taken
        ):
            start = item.timestamp
            group_id = item.timestamp_iso
            taken = set()
        taken.add(item.subband)
        groups[item.filename] = group_id
    return groups
