"""The synthetic UVH5 writer: valid files pyuvdata itself reads back, jittered like the
correlator's, and the bad cases the demo and the tests need."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pytest

from resources.hdf5 import synthetic
from resources.models.hdf5 import parse_hdf5_name
from tests.resources.hdf5.files import START


def _uvdata(path: Path):
    from pyuvdata import UVData

    return UVData.from_file(str(path), file_type="uvh5")


def test_observation_is_jittered_within_the_limit(tmp_path: Path) -> None:
    paths = synthetic.write_observation(
        tmp_path, START, subbands=[0, 1, 2, 15], max_jitter_s=50, seed=7
    )
    names = [parse_hdf5_name(p) for p in paths]
    assert sorted(n.subband for n in names) == [0, 1, 2, 15]
    stamps = [n.timestamp for n in names]
    assert min(stamps) == START and max(stamps) - START <= dt.timedelta(seconds=50)
    assert len(set(stamps)) > 1  # seed 7 does jitter
    uv = _uvdata(paths[-1])  # pyuvdata's own checks pass on what it wrote
    assert uv.Nfreqs == 4 and uv.Ntimes == 2 and uv.Nants_data == 3
    assert uv.freq_array.min() > synthetic.BAND_LOW_HZ


def test_clone_is_valid_and_moved_in_time(templates: dict[int, Path], tmp_path: Path) -> None:
    later = START + dt.timedelta(hours=5, seconds=17)
    clone = synthetic.clone_subband(
        templates[9], tmp_path / synthetic.subband_filename(later, 9), later
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an LST out of pyuvdata's tolerance would warn
        # ... but the uvws are the template's, phased for its own time (documented)
        warnings.filterwarnings("ignore", message="The uvw_array does not match")
        uv = _uvdata(clone)
    assert uv.time_array.min() == pytest.approx(synthetic.julian_date(later), abs=1e-8)


def test_bad_cases(templates: dict[int, Path], tmp_path: Path) -> None:
    copies = [
        synthetic.clone_subband(templates[sb], tmp_path / templates[sb].name, START)
        for sb in (0, 1)
    ]
    dup = synthetic.duplicate_subband(copies[1], delay_s=7)
    assert dup.name == "2025-10-05T12:00:07_sb01.hdf5" and dup.exists()
    gone = synthetic.drop_subband(copies, 0)
    assert not gone.exists()
    size = copies[1].stat().st_size
    assert synthetic.corrupt_file(copies[1], 0.5).stat().st_size == size // 2
    with pytest.raises(FileNotFoundError):
        synthetic.drop_subband(copies, 5)
    with pytest.raises(ValueError, match="out of range"):
        synthetic.subband_frequencies(16)


def test_day_from_templates(tmp_path: Path) -> None:
    paths = synthetic.write_day_from_templates(
        tmp_path / "day", dt.date(2025, 10, 6), observations=2, max_jitter_s=30
    )
    assert len(paths) == 32 and not (tmp_path / "day" / ".templates").exists()
    assert parse_hdf5_name(paths[16]).timestamp >= dt.datetime(2025, 10, 6, 0, 5, tzinfo=dt.UTC)
