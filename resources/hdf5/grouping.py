"""Observation groups: which subband files belong to one 5-minute observation.

The rule (anchored, not chained): sort the readable files by (timestamp, subband, path); the
first file opens a group; each next file joins the open group when its timestamp is at most
`tolerance_s` after the group's *earliest* file, and otherwise opens a new group. So a chain of
files each less than the tolerance apart but spanning more than it is cut where a file lies
more than `tolerance_s` after the group's first; a chained rule would let one group grow
without bound when observations run back to back with jitter, and merge two observations.

A duplicate subband (a second file of a subband already in the group) stays in the group and is
reported in `duplicates`; it does not open a new group (unlike the older
`resources.models.hdf5.assign_groups`), because an operator wants to see "sb03 twice in the
12:00 observation", not a phantom one-file observation at 12:00:05.

The group id is the earliest file's timestamp, ISO to the second; ids are unique because each
group starts more than the tolerance after the previous one's start. `complete` means no
subband of 0..15 is missing; duplicates are reported apart and do not make a group incomplete.

Unreadable files never reach this module (they are `FailedFile`s), so they join no group.
Cost: one sort, O(n log n), then one pass.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from resources.models.hdf5 import GROUP_TOLERANCE_S, N_SUBBANDS

ALL_SUBBANDS = tuple(range(N_SUBBANDS))
ISO_SECONDS = "%Y-%m-%dT%H:%M:%S"


class Groupable(Protocol):
    """What grouping needs of a file: a `SubbandHeader`, or a row read back from the database."""

    @property
    def path(self) -> str: ...

    @property
    def timestamp(self) -> dt.datetime: ...

    @property
    def subband(self) -> int: ...


@dataclass(frozen=True)
class FileRef:
    """The minimal `Groupable`: what the repository reads back from `hdf5_files`."""

    path: str
    timestamp: dt.datetime
    subband: int


@dataclass
class SubbandGroup:
    """One observation: its files and what a complete observation would have had."""

    group_id: str
    start: dt.datetime
    end: dt.datetime
    paths: list[str] = field(default_factory=list)
    subband_of: list[int] = field(default_factory=list)  # parallel to `paths`

    @property
    def subbands(self) -> list[int]:
        """Present subband numbers, each once, ascending."""
        return sorted(set(self.subband_of))

    @property
    def missing(self) -> list[int]:
        present = set(self.subband_of)
        return [sb for sb in ALL_SUBBANDS if sb not in present]

    @property
    def duplicates(self) -> list[int]:
        """Subband numbers seen more than once in this group, ascending."""
        return sorted(sb for sb, n in Counter(self.subband_of).items() if n > 1)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def n_files(self) -> int:
        return len(self.paths)

    def to_dict(self) -> dict[str, object]:
        """The shape `contimg hdf5 groups --json` will print (issue 20)."""
        return {
            "group_id": self.group_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n_files": self.n_files,
            "subbands": self.subbands,
            "missing_subbands": self.missing,
            "duplicate_subbands": self.duplicates,
            "complete": self.complete,
        }


def group_id_of(timestamp: dt.datetime) -> str:
    """The id of a group whose earliest file has this timestamp (UTC, to the second)."""
    return timestamp.astimezone(dt.UTC).strftime(ISO_SECONDS)


def _sort_key(item: Groupable) -> tuple[dt.datetime, int, str]:
    return (item.timestamp, item.subband, item.path)


def group_files(
    files: Iterable[Groupable], tolerance_s: float = GROUP_TOLERANCE_S
) -> list[SubbandGroup]:
    """Cluster files into observation groups (the anchored rule above), in time order.

    Deterministic: the input order does not matter (ties are broken by subband, then path).
    """
    if tolerance_s < 0:
        raise ValueError(f"tolerance_s must be >= 0, not {tolerance_s}")
    tolerance = dt.timedelta(seconds=tolerance_s)
    groups: list[SubbandGroup] = []
    current: SubbandGroup | None = None
    for item in sorted(files, key=_sort_key):
        if current is None or item.timestamp - current.start > tolerance:
            current = SubbandGroup(
                group_id=group_id_of(item.timestamp), start=item.timestamp, end=item.timestamp
            )
            groups.append(current)
        current.paths.append(item.path)
        current.subband_of.append(item.subband)
        current.end = item.timestamp
    return groups


def group_ids(groups: Sequence[SubbandGroup]) -> dict[str, str]:
    """path -> group id, for writing the assignment back."""
    return {path: group.group_id for group in groups for path in group.paths}


def summarise(rows: Iterable[tuple[str, str, dt.datetime, int]]) -> list[SubbandGroup]:
    """Groups from stored assignments (group_id, path, timestamp, subband), in id order.

    For reading a day back from the database without re-clustering: the assignment written
    by `group_files` is the truth, so a later change of tolerance does not silently re-shape
    groups that were already reported.
    """
    by_id: dict[str, SubbandGroup] = {}
    for group_id, path, stamp, subband in sorted(rows, key=lambda r: (r[0], r[2], r[3], r[1])):
        group = by_id.get(group_id)
        if group is None:
            group = by_id[group_id] = SubbandGroup(group_id=group_id, start=stamp, end=stamp)
        group.paths.append(path)
        group.subband_of.append(subband)
        group.start = min(group.start, stamp)
        group.end = max(group.end, stamp)
    return [by_id[key] for key in sorted(by_id)]
