"""`read_ms` and `find_measurement_sets` on real sets written by pyuvdata (conftest.py).

Each summary field is compared with what the writer was asked for; each broken case must give
its typed error, naming the path, on one line.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from resources.errors import (
    CasaTableError,
    CorruptCasaTableError,
    MeasurementSetError,
    NotCasaTableError,
)
from resources.hdf5.synthetic import INTEGRATION_S, make_uvdata, subband_frequencies
from resources.ms import synthetic
from resources.ms.reader import (
    MsSummary,
    datetime_to_mjd,
    find_measurement_sets,
    group_id_from_name,
    read_ms,
)
from tests.resources.ms.conftest import START, WrittenSets

DAY = 1e-6  # tolerance on MJD days (~0.09 s)
INTEGRATION_DAYS = INTEGRATION_S / 86400.0


def _files_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_plain_summary_is_what_was_written(written: WrittenSets) -> None:
    summary = read_ms(written.plain)
    start = datetime_to_mjd(START)
    assert summary.path == str(written.plain.resolve())
    assert summary.name == "2026-01-01T00:05:00.ms"
    assert summary.start_mjd == pytest.approx(start, abs=DAY)
    assert summary.end_mjd == pytest.approx(start + INTEGRATION_DAYS, abs=DAY)
    assert summary.mid_mjd == pytest.approx(start + INTEGRATION_DAYS / 2, abs=DAY)
    assert summary.obs_date == dt.date(2026, 1, 1)
    assert summary.field_name == "drift_dec+16.3"
    assert summary.dec_deg == pytest.approx(16.3, abs=1e-6)
    assert summary.n_spw == 1
    assert summary.n_channels == 16 * 4
    # pyuvdata writes the first channel as REF_FREQUENCY: sb00's top channel here.
    assert summary.ref_freq_hz == pytest.approx(subband_frequencies(0)[0])
    assert summary.n_rows == 3 * 2  # 3 baselines (3 antennas, no autos) x 2 integrations
    assert summary.has_corrected_data is False
    assert summary.hdf5_group == "2026-01-01T00:05:00"
    assert summary.size_bytes == _files_size(written.plain)
    assert summary.mtime_ns == (written.plain / "table.dat").stat().st_mtime_ns


def test_ra_is_the_phase_centre_written(written: WrittenSets) -> None:
    """The writer phases to the LST at the start; the summary gives it in degrees."""
    uv = make_uvdata(START, 0)
    (centre,) = uv.phase_center_catalog.values()
    expected = math.degrees(centre["cat_lon"]) % 360.0
    summary = read_ms(written.plain)
    assert summary.ra_deg == pytest.approx(expected, abs=1e-6)
    assert 0.0 <= summary.ra_deg < 360.0


def test_spectral_windows_per_subband(written: WrittenSets) -> None:
    summary = read_ms(written.per_spw)
    start = datetime_to_mjd(START)
    assert summary.n_spw == 3
    assert summary.n_channels == 3 * 8
    assert summary.n_rows == 3 * 3 * 3  # baselines x integrations x spectral windows
    assert summary.end_mjd == pytest.approx(start + 2 * INTEGRATION_DAYS, abs=DAY)
    assert summary.dec_deg == pytest.approx(-30.5, abs=1e-6)
    assert summary.field_name == "drift_dec-30.5"
    assert summary.hdf5_group is None  # "custom.ms" does not start with a timestamp
    with table(str(written.per_spw / "SPECTRAL_WINDOW"), ack=False) as spw:
        lowest = float(spw.getcol("REF_FREQUENCY").min())
    assert summary.ref_freq_hz == lowest


def test_calibrated_set_has_corrected_data(written: WrittenSets) -> None:
    summary = read_ms(written.calibrated)
    assert summary.has_corrected_data is True
    assert summary.n_channels == 2 * 4
    assert summary.hdf5_group == "2026-01-01T01:05:00"
    assert summary.start_mjd == pytest.approx(datetime_to_mjd(START) + 1 / 24, abs=DAY)


def test_summary_is_frozen(written: WrittenSets) -> None:
    summary = read_ms(written.plain)
    assert isinstance(summary, MsSummary)
    with pytest.raises(AttributeError):
        summary.n_rows = 0  # type: ignore[misc]


def test_relative_path_is_resolved(written: WrittenSets, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(written.plain.parent)
    summary = read_ms(written.plain.name)
    assert summary.path == str(written.plain.resolve())


def test_calibrating_in_place_is_seen_as_a_change(
    written: WrittenSets, copy_ms: Callable[..., Path]
) -> None:
    """Adding CORRECTED_DATA rewrites table.dat: its mtime and the size move (change detection)."""
    ms = copy_ms(written.plain)  # copytree keeps the original's mtimes
    before = read_ms(ms)
    synthetic.add_corrected_data(ms)
    after = read_ms(ms)
    assert (before.has_corrected_data, after.has_corrected_data) == (False, True)
    assert after.mtime_ns != before.mtime_ns
    assert after.size_bytes > before.size_bytes


def test_a_real_time_range_is_used(written: WrittenSets, copy_ms: Callable[..., Path]) -> None:
    """CASA fills OBSERVATION's TIME_RANGE; when it is not [0, 0] it wins over TIME."""
    ms = copy_ms(written.plain)
    start_s = datetime_to_mjd(START) * 86400.0
    with table(str(ms / "OBSERVATION"), ack=False, readonly=False) as obs:
        obs.putcol("TIME_RANGE", np.array([[start_s - 600.0, start_s + 900.0]]))
    summary = read_ms(ms)
    assert summary.start_mjd == pytest.approx((start_s - 600.0) / 86400.0, abs=DAY)
    assert summary.end_mjd == pytest.approx((start_s + 900.0) / 86400.0, abs=DAY)


def test_time_column_is_the_fallback_without_observation(
    written: WrittenSets, copy_ms: Callable[..., Path]
) -> None:
    ms = synthetic.drop_subtable(copy_ms(written.plain), "OBSERVATION")
    assert read_ms(ms).start_mjd == pytest.approx(datetime_to_mjd(START), abs=DAY)


def test_negative_ra_is_wrapped(written: WrittenSets, copy_ms: Callable[..., Path]) -> None:
    ms = copy_ms(written.plain)
    with table(str(ms / "FIELD"), ack=False, readonly=False) as field:
        field.putcol("PHASE_DIR", np.array([[[-0.1, 0.2]]]))
    summary = read_ms(ms)
    assert summary.ra_deg == pytest.approx(360.0 - math.degrees(0.1), abs=1e-9)
    assert summary.dec_deg == pytest.approx(math.degrees(0.2), abs=1e-9)


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("2026-01-01T00:05:00.ms", "2026-01-01T00:05:00"),
        ("2026-01-01T00:05:00_cal.ms", "2026-01-01T00:05:00"),
        ("2026-13-01T00:05:00.ms", None),
        ("2026-01-01 00:05:00.ms", None),
        ("obs_2026-01-01T00:05:00.ms", None),
        ("custom.ms", None),
    ],
)
def test_group_id_from_name(name: str, group: str | None) -> None:
    assert group_id_from_name(name) == group


# --- broken sets ------------------------------------------------------------------------------


def _assert_names_path(error: CasaTableError, path: Path) -> None:
    message = str(error)
    assert str(path) in message
    assert error.path == str(path)
    assert "\n" not in message


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.ms"
    with pytest.raises(NotCasaTableError, match="does not exist") as info:
        read_ms(path)
    _assert_names_path(info.value, path)


def test_a_file_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "file.ms"
    path.write_text("not a directory\n")
    with pytest.raises(NotCasaTableError, match="not a directory") as info:
        read_ms(path)
    _assert_names_path(info.value, path)


def test_directory_without_tables(tmp_path: Path) -> None:
    path = synthetic.write_broken_ms(tmp_path, START, "no_tables")
    with pytest.raises(NotCasaTableError, match="no table.dat") as info:
        read_ms(path)
    _assert_names_path(info.value, path)


def test_truncated_table_dat(tmp_path: Path) -> None:
    path = synthetic.write_broken_ms(tmp_path, START, "truncated")
    with pytest.raises(CorruptCasaTableError, match="cannot open the main table") as info:
        read_ms(path)
    _assert_names_path(info.value, path)


def test_truncated_subtable(written: WrittenSets, copy_ms: Callable[..., Path]) -> None:
    ms = synthetic.truncate_table(copy_ms(written.plain) / "FIELD")
    with pytest.raises(CorruptCasaTableError, match="FIELD subtable") as info:
        read_ms(ms.parent)
    _assert_names_path(info.value, ms.parent)


def test_no_spectral_window(tmp_path: Path) -> None:
    path = synthetic.write_broken_ms(tmp_path, START, "no_spectral_window")
    with pytest.raises(MeasurementSetError, match="no SPECTRAL_WINDOW subtable") as info:
        read_ms(path)
    _assert_names_path(info.value, path)


def test_dangling_subtable_keyword(written: WrittenSets, copy_ms: Callable[..., Path]) -> None:
    """Only the directory gone, the main table's keyword still pointing at it: same error."""
    ms = synthetic.drop_subtable(copy_ms(written.plain), "FIELD", keyword=False)
    with pytest.raises(MeasurementSetError, match="no FIELD subtable") as info:
        read_ms(ms)
    _assert_names_path(info.value, ms)


def _empty_copy(source: Path, destination: Path) -> Path:
    """A deep copy of a table (with its subtables) holding none of its rows.

    `removerows` is refused on the main table (its storage managers cannot remove rows) and
    does not persist on a pyuvdata-written SPECTRAL_WINDOW, so copy an empty selection.
    """
    with table(str(source), ack=False) as whole, whole.selectrows([]) as none:
        none.copy(str(destination), deep=True).close()
    return destination


def test_no_rows(written: WrittenSets, tmp_path: Path) -> None:
    ms = _empty_copy(written.plain, tmp_path / written.plain.name)
    with pytest.raises(MeasurementSetError, match="no rows") as info:
        read_ms(ms)
    _assert_names_path(info.value, ms)


def test_no_time_column(written: WrittenSets, copy_ms: Callable[..., Path]) -> None:
    ms = copy_ms(written.plain)
    with table(str(ms), ack=False, readonly=False) as main:
        main.removecols("TIME")
    with pytest.raises(MeasurementSetError, match="no TIME column") as info:
        read_ms(ms)
    _assert_names_path(info.value, ms)


def test_empty_spectral_window(written: WrittenSets, copy_ms: Callable[..., Path]) -> None:
    ms = copy_ms(written.plain)
    _empty_copy(ms / "SPECTRAL_WINDOW", ms / "EMPTY_SPW")
    shutil.rmtree(ms / "SPECTRAL_WINDOW")
    (ms / "EMPTY_SPW").rename(ms / "SPECTRAL_WINDOW")
    with pytest.raises(MeasurementSetError, match="SPECTRAL_WINDOW subtable has no rows"):
        read_ms(ms)


# --- finding sets -----------------------------------------------------------------------------


def test_find_measurement_sets(tmp_path: Path) -> None:
    root = tmp_path / "watched"
    for relative in (
        "2026-01-02T00:00:00.ms",
        "night/a/2026-01-01T00:05:00.ms",
        "night/b/deep/2026-01-01T00:00:00.ms",
        ".staging/2025-12-31T00:00:00.ms",
        "2026-01-03T00:00:00.ms/inner.ms",  # inside a set: not a set of its own
        "night/.hidden.ms",
    ):
        (root / relative).mkdir(parents=True)
    (root / "night" / "file.ms").write_text("a file, not a directory\n")
    other = tmp_path / "other"
    (other / "x.ms").mkdir(parents=True)
    missing = tmp_path / "gone"

    found, absent = find_measurement_sets([root, missing, other])

    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "watched/night/b/deep/2026-01-01T00:00:00.ms",
        "watched/night/a/2026-01-01T00:05:00.ms",
        "watched/2026-01-02T00:00:00.ms",
        "watched/2026-01-03T00:00:00.ms",
        "other/x.ms",
    ]
    assert absent == [missing]


def test_a_set_given_as_directory_is_found(written: WrittenSets) -> None:
    found, absent = find_measurement_sets([written.plain])
    assert found == [written.plain] and absent == []


def test_found_sets_read(written: WrittenSets) -> None:
    found, _ = find_measurement_sets([written.plain.parent.parent])
    assert {p.name for p in found} == {
        written.plain.name,
        written.per_spw.name,
        written.calibrated.name,
    }
    assert all(read_ms(p).n_rows > 0 for p in found)


def test_os_walk_does_not_see_into_found_sets(tmp_path: Path) -> None:
    """A set's subtables are never listed: walking stops at the `.ms` directory."""
    (tmp_path / "a.ms" / "SPECTRAL_WINDOW" / "nested.ms").mkdir(parents=True)
    found, _ = find_measurement_sets([tmp_path])
    assert found == [tmp_path / "a.ms"]
    assert os.path.isdir(tmp_path / "a.ms" / "SPECTRAL_WINDOW" / "nested.ms")
