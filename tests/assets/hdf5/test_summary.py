"""`assets.hdf5.summary`: compact subband lists, a day's counts and the check's verdict."""

from __future__ import annotations

import datetime as dt

from assets.hdf5.summary import DaySummary, incomplete_markdown, subband_list
from resources.hdf5.grouping import FileRef, group_files

START = dt.datetime(2025, 10, 5, 12, tzinfo=dt.UTC)


def _group(minute: int, subbands: list[int]) -> list[FileRef]:
    stamp = START + dt.timedelta(minutes=minute)
    return [FileRef(f"/d/{minute}_{i}_{sb}", stamp, sb) for i, sb in enumerate(subbands)]


def test_subband_list() -> None:
    assert subband_list([]) == "-"
    assert subband_list(list(range(16))) == "0-15"
    assert subband_list([0, 1, 2, 4, 6, 7, 15]) == "0-2,4,6-7,15"


def test_day_summary_and_the_95_percent_limit() -> None:
    refs = [ref for m in range(0, 100, 5) for ref in _group(m, list(range(16)))]
    groups = group_files(refs)
    assert DaySummary(START.date(), groups, []).passed  # 20 of 20
    partial = group_files([*refs, *_group(100, [0, 1])])
    day = DaySummary(START.date(), partial, [])
    assert (day.complete, len(day.groups), day.files) == (20, 21, 322)
    assert day.complete_fraction == 20 / 21 and day.passed  # 95.2 %
    worse = DaySummary(START.date(), group_files([*refs, *_group(100, [0]), *_group(105, [3])]), [])
    assert not worse.passed  # 20 of 22: 90.9 %
    assert worse.check_description() == "2025-10-05: 20 of 22 groups complete (90.9%), below 95%"
    table = incomplete_markdown(worse.incomplete_groups)
    assert table.splitlines()[2] == "| 2025-10-05T13:40:00 | 1 | 1-15 | - |"


def test_a_day_without_groups_passes_and_says_so() -> None:
    empty = DaySummary(START.date(), [], [])
    assert empty.passed and empty.check_description() == "2025-10-05: no subband groups"
    assert incomplete_markdown([]) == "No incomplete groups."
