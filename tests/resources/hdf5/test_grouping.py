"""The grouping rule: anchored on each group's earliest file, duplicates reported in place,
deterministic whatever the input order."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from resources.hdf5.grouping import FileRef, group_files, group_ids, summarise
from resources.hdf5.headers import read_headers
from resources.models.hdf5 import GROUP_TOLERANCE_S
from tests.resources.hdf5.files import START, Observation


def ref(offset_s: float, subband: int, tag: str = "") -> FileRef:
    stamp = START + dt.timedelta(seconds=offset_s)
    return FileRef(f"/raw/{stamp:%Y-%m-%dT%H:%M:%S}_sb{subband:02d}{tag}.hdf5", stamp, subband)


def test_default_tolerance_is_the_models() -> None:
    assert GROUP_TOLERANCE_S == 60.0


def test_complete_jittered_observation_from_real_files(observation: Observation) -> None:
    headers, failures = read_headers(observation(max_jitter_s=59, seed=3))
    assert failures == []
    (group,) = group_files(headers)
    assert group.group_id == "2025-10-05T12:00:00" and group.start == START
    assert group.subbands == list(range(16)) and group.missing == [] and group.duplicates == []
    assert group.complete and group.n_files == 16
    assert dt.timedelta(0) < group.end - group.start <= dt.timedelta(seconds=59)


def test_missing_and_duplicate() -> None:
    files = [ref(i * 2, sb) for i, sb in enumerate(sb for sb in range(16) if sb != 7)]
    files.append(ref(40, 3, "_rewrite"))
    (group,) = group_files(files)
    assert group.missing == [7] and group.duplicates == [3] and not group.complete
    assert group.subbands == [sb for sb in range(16) if sb != 7] and group.n_files == 16
    assert group.to_dict() | {"start": None, "end": None} == {
        "group_id": "2025-10-05T12:00:00",
        "start": None,
        "end": None,
        "n_files": 16,
        "subbands": group.subbands,
        "missing_subbands": [7],
        "duplicate_subbands": [3],
        "complete": False,
    }


def test_duplicate_only_is_still_complete() -> None:
    (group,) = group_files([ref(sb, sb) for sb in range(16)] + [ref(30, 0, "_b")])
    assert group.complete and group.duplicates == [0]


def test_two_observations_five_minutes_apart() -> None:
    files = [ref(sb, sb) for sb in range(16)] + [ref(300 + sb, sb) for sb in range(16)]
    first, second = group_files(files)
    assert (first.group_id, second.group_id) == ("2025-10-05T12:00:00", "2025-10-05T12:05:00")
    assert first.complete and second.complete and first.n_files == second.n_files == 16


def test_boundary_is_inclusive() -> None:
    groups = group_files([ref(0, 0), ref(60, 1), ref(61, 2)])
    assert [g.paths for g in groups] == [[ref(0, 0).path, ref(60, 1).path], [ref(61, 2).path]]


def test_chain_is_cut_at_the_tolerance_from_the_first_file() -> None:
    """Files each 40 s after the previous (a chain) do not make one 160 s group."""
    groups = group_files([ref(0, 0), ref(40, 1), ref(80, 2), ref(120, 3), ref(160, 4)])
    assert [g.group_id for g in groups] == [
        "2025-10-05T12:00:00",
        "2025-10-05T12:01:20",
        "2025-10-05T12:02:40",
    ]
    assert [g.subbands for g in groups] == [[0, 1], [2, 3], [4]]


def test_tolerance_is_configurable() -> None:
    files = [ref(0, 0), ref(20, 1), ref(45, 2)]
    assert len(group_files(files)) == 1
    assert [g.subbands for g in group_files(files, tolerance_s=30)] == [[0, 1], [2]]
    with pytest.raises(ValueError, match="tolerance_s"):
        group_files(files, tolerance_s=-1)


def test_deterministic_under_any_order() -> None:
    files = [
        ref(day * 300 + random.Random(day).randint(0, 50), sb)
        for day in range(30)
        for sb in range(16)
    ]
    files += [ref(900 + 10, 5, "_dup")]
    expected = group_files(files)
    for seed in range(5):
        shuffled = files[:]
        random.Random(seed).shuffle(shuffled)
        assert group_files(shuffled) == expected
    assert len(expected) == 30 and len({g.group_id for g in expected}) == 30
    mapping = group_ids(expected)
    assert len(mapping) == len(files)


def test_summarise_reads_stored_assignments_back() -> None:
    groups = group_files([ref(sb, sb) for sb in range(15)] + [ref(300, 0)])
    rows = [
        (g.group_id, path, START + dt.timedelta(seconds=0), sb)
        for g in groups
        for path, sb in zip(g.paths, g.subband_of, strict=True)
    ]
    again = summarise(reversed(rows))
    assert [(g.group_id, g.missing[:1], g.n_files) for g in again] == [
        ("2025-10-05T12:00:00", [15], 15),
        ("2025-10-05T12:05:00", [1], 1),
    ]
