"""Headers of real UVH5 files (written by pyuvdata) read with h5py, and every way one fails:
a typed one-line error naming the file, the other files still read."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from resources.errors import (
    CorruptHDF5Error,
    FileNameError,
    HDF5FileAccessError,
    HDF5HeaderError,
    NotHDF5Error,
)
from resources.hdf5 import headers as hdr
from resources.hdf5 import synthetic
from tests.resources.hdf5.files import START, Observation


def _copy(src: Path, tmp_path: Path, name: str | None = None) -> Path:
    dest = tmp_path / (name or src.name)
    shutil.copyfile(src, dest)
    return dest


def test_header_matches_what_pyuvdata_reads(templates: dict[int, Path]) -> None:
    from pyuvdata import UVData

    path = templates[3]
    header = hdr.read_header(path)
    uv = UVData.from_file(str(path), file_type="uvh5", read_data=False)
    assert header.subband == 3 and header.timestamp == START
    assert header.start_mjd == pytest.approx(uv.time_array.min() - 2400000.5, abs=1e-9)
    assert header.end_mjd == pytest.approx(uv.time_array.max() - 2400000.5, abs=1e-9)
    assert header.start == pytest.approx(START, abs=dt.timedelta(milliseconds=1))
    assert (header.n_freqs, header.n_times, header.n_blts) == (uv.Nfreqs, uv.Ntimes, uv.Nblts)
    assert header.freq_min_hz == pytest.approx(uv.freq_array.min())
    assert header.freq_max_hz == pytest.approx(uv.freq_array.max())
    assert 1.31e9 < header.freq_min_hz < header.freq_max_hz < 1.50e9
    assert header.dec_deg == pytest.approx(16.3)
    assert header.ra_deg is not None and 0.0 <= header.ra_deg < 360.0
    stat = path.stat()
    assert (header.size_bytes, header.mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_subbands_tile_the_band_top_down(templates: dict[int, Path]) -> None:
    ranges = [hdr.read_header(templates[sb]) for sb in range(16)]
    assert all(a.freq_min_hz > b.freq_max_hz for a, b in itertools.pairwise(ranges))
    assert ranges[15].freq_min_hz > synthetic.BAND_LOW_HZ
    assert ranges[0].freq_max_hz < synthetic.BAND_HIGH_HZ


def test_visibilities_are_never_read(templates: dict[int, Path], tmp_path: Path) -> None:
    """Without its Data group at all the header still reads: nothing of it is touched."""
    path = _copy(templates[0], tmp_path)
    with h5py.File(path, "r+") as handle:
        del handle["Data"]
    assert hdr.read_header(path).n_blts > 0


def test_long_time_array_is_read_at_its_ends(templates: dict[int, Path], tmp_path: Path) -> None:
    path = _copy(templates[1], tmp_path)
    with h5py.File(path, "r+") as handle:
        old = handle["Header/time_array"][()]
        del handle["Header/time_array"]
        handle["Header/time_array"] = np.linspace(old[0], old[0] + 0.003, 100_000)
    header = hdr.read_header(path)
    assert header.end_mjd - header.start_mjd == pytest.approx(0.003)


def test_phase_centre_from_older_conventions(templates: dict[int, Path], tmp_path: Path) -> None:
    """No catalog: the apparent Dec of the first baseline-time; then the pre-catalog key."""
    path = _copy(templates[2], tmp_path)
    with h5py.File(path, "r+") as handle:
        del handle["Header/phase_center_catalog"]
    assert hdr.read_header(path).dec_deg == pytest.approx(16.3, abs=0.5)  # apparent, not J2000
    with h5py.File(path, "r+") as handle:
        del handle["Header/phase_center_app_dec"]
        del handle["Header/phase_center_app_ra"]
        handle["Header/phase_center_dec"] = np.deg2rad(55.1)
    assert hdr.read_header(path).dec_deg == pytest.approx(55.1)
    with h5py.File(path, "r+") as handle:
        del handle["Header/phase_center_dec"]
    header = hdr.read_header(path)
    assert header.dec_deg is None and header.ra_deg is None  # Dec is optional


def test_unprojected_catalog_entry_uses_apparent_dec(
    templates: dict[int, Path], tmp_path: Path
) -> None:
    """An altaz (`unprojected`) entry's latitude is an altitude, not a Dec."""
    path = _copy(templates[4], tmp_path)
    with h5py.File(path, "r+") as handle:
        entry = handle["Header/phase_center_catalog"][
            next(iter(handle["Header/phase_center_catalog"]))
        ]
        del entry["cat_frame"]
        entry["cat_frame"] = np.bytes_("altaz")
        del entry["cat_lat"]
        entry["cat_lat"] = np.pi / 2
    assert hdr.read_header(path).dec_deg == pytest.approx(16.3, abs=0.5)


def test_catalog_of_several_entries_follows_the_id_array(
    templates: dict[int, Path], tmp_path: Path
) -> None:
    path = _copy(templates[5], tmp_path)
    with h5py.File(path, "r+") as handle:
        catalog = handle["Header/phase_center_catalog"]
        handle.copy(catalog[next(iter(catalog))], catalog, name="7")
        del catalog["7"]["cat_lat"]
        catalog["7"]["cat_lat"] = np.deg2rad(66.2)
        ids = handle["Header/phase_center_id_array"]
        ids[...] = 7
    assert hdr.read_header(path).dec_deg == pytest.approx(66.2)


def _one_line_naming(error: Exception, path: Path) -> str:
    text = str(error)
    assert "\n" not in text and text.startswith(f"{path}: ")
    return text


def test_truncated_file_is_corrupt(templates: dict[int, Path], tmp_path: Path) -> None:
    path = synthetic.corrupt_file(_copy(templates[5], tmp_path))
    with pytest.raises(CorruptHDF5Error) as info:
        hdr.read_header(path)
    assert "truncated" in _one_line_naming(info.value, path)


def test_damaged_superblock_is_corrupt(templates: dict[int, Path], tmp_path: Path) -> None:
    path = _copy(templates[6], tmp_path)
    with open(path, "r+b") as handle:  # keep the signature, scramble what follows
        handle.seek(8)
        handle.write(b"\xff" * 64)
    with pytest.raises(CorruptHDF5Error) as info:
        hdr.read_header(path)
    _one_line_naming(info.value, path)


def test_not_hdf5_and_empty(tmp_path: Path) -> None:
    text = synthetic.write_not_hdf5(tmp_path / "2025-10-05T12:00:00_sb00.hdf5")
    with pytest.raises(NotHDF5Error) as info:
        hdr.read_header(text)
    assert "no HDF5 signature" in _one_line_naming(info.value, text)
    empty = tmp_path / "2025-10-05T12:00:00_sb01.hdf5"
    empty.touch()
    with pytest.raises(CorruptHDF5Error, match="empty"):
        hdr.read_header(empty)


def test_missing_header_fields(templates: dict[int, Path], tmp_path: Path) -> None:
    path = _copy(templates[7], tmp_path)
    with h5py.File(path, "r+") as handle:
        del handle["Header/freq_array"]
        del handle["Header/Ntimes"]
    with pytest.raises(HDF5HeaderError) as info:
        hdr.read_header(path)
    assert "freq_array, Ntimes" in _one_line_naming(info.value, path)
    plain = tmp_path / "2025-10-05T12:00:00_sb08.hdf5"
    with h5py.File(plain, "w") as handle:
        handle["x"] = 1
    with pytest.raises(HDF5HeaderError, match="not a UVH5 file"):
        hdr.read_header(plain)


def test_name_that_does_not_parse_is_refused_before_reading(
    templates: dict[int, Path], tmp_path: Path
) -> None:
    path = _copy(templates[0], tmp_path, "obs_2025-10-05_sb00.hdf5")
    with pytest.raises(FileNameError) as info:
        hdr.read_header(path)
    _one_line_naming(info.value, path)
    with pytest.raises(FileNameError, match="out of range"):
        hdr.read_header(_copy(templates[0], tmp_path, "2025-10-05T12:00:00_sb16.hdf5"))


def test_vanished_file(tmp_path: Path) -> None:
    with pytest.raises(HDF5FileAccessError, match="cannot stat"):
        hdr.read_header(tmp_path / "2025-10-05T12:00:00_sb00.hdf5")


def test_read_headers_keeps_going_and_dates_failures(
    observation: Observation, tmp_path: Path
) -> None:
    paths = observation()
    synthetic.corrupt_file(paths[3])
    stray = synthetic.write_not_hdf5(tmp_path / "raw" / "notes.hdf5")
    old = dt.datetime(2025, 10, 4, 23, 0, tzinfo=dt.UTC).timestamp()
    os.utime(stray, (old, old))
    good, bad = hdr.read_headers([*paths, stray])
    assert len(good) == 15 and [g.path for g in good] == [str(p) for p in paths if p != paths[3]]
    by_class = {f.error_class: f for f in bad}
    assert set(by_class) == {"CorruptHDF5Error", "FileNameError"}
    assert by_class["CorruptHDF5Error"].obs_date == dt.date(2025, 10, 5)  # from the name
    assert by_class["FileNameError"].obs_date == dt.date(2025, 10, 4)  # from the mtime
    assert all("\n" not in f.error and f.error.startswith(f.path) for f in bad)


def test_process_pool_gives_the_same_answer(
    observation: Observation, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = observation()
    synthetic.corrupt_file(paths[0])
    serial = hdr.read_headers(paths, workers=1)
    monkeypatch.setattr(hdr, "PARALLEL_MIN_FILES", 2)
    assert hdr.read_headers(paths, workers=2) == serial
