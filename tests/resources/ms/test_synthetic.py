"""The synthetic measurement-set writer: sets pyuvdata itself reads back, named after their
observation, the calibrated variant, and the broken cases the reader's tests need."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pytest
from casacore.tables import table

from resources.errors import CorruptCasaTableError, MeasurementSetError, NotCasaTableError
from resources.hdf5.synthetic import subband_frequencies
from resources.ms import synthetic
from resources.ms.reader import read_ms
from tests.resources.ms.conftest import START, WrittenSets


def _read_back(path: Path):
    from pyuvdata import UVData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyuvdata's notes on what CASA would do differently
        return UVData.from_file(str(path), file_type="ms")


def test_name_is_the_group_id(written: WrittenSets) -> None:
    assert synthetic.ms_name(START) == "2026-01-01T00:05:00.ms"
    assert written.plain.name == "2026-01-01T00:05:00.ms"
    eastern = dt.timezone(dt.timedelta(hours=-5))
    assert synthetic.ms_name(START.astimezone(eastern)) == "2026-01-01T00:05:00.ms"


def test_pyuvdata_reads_back_what_was_written(written: WrittenSets) -> None:
    expected = synthetic.make_ms_uvdata(START)
    uv = _read_back(written.plain)
    assert uv.Nfreqs == 16 * 4 and uv.Ntimes == 2 and uv.Nants_data == 3
    np.testing.assert_allclose(np.sort(uv.freq_array), np.sort(expected.freq_array))
    np.testing.assert_allclose(uv.time_array.min(), expected.time_array.min(), atol=1e-8)
    assert np.abs(uv.data_array).sum() == pytest.approx(np.abs(expected.data_array).sum())


def test_subbands_are_concatenated_in_order(written: WrittenSets) -> None:
    with table(str(written.plain / "SPECTRAL_WINDOW"), ack=False) as spw:
        freqs = spw.getcell("CHAN_FREQ", 0)
    wanted = np.concatenate([subband_frequencies(sb) for sb in range(16)])
    np.testing.assert_allclose(freqs, wanted)


def test_one_spectral_window_per_subband(written: WrittenSets) -> None:
    with table(str(written.per_spw / "SPECTRAL_WINDOW"), ack=False) as spw:
        assert spw.nrows() == 3
        rows = [spw.getcell("CHAN_FREQ", i) for i in range(3)]
    for row, subband in zip(rows, (0, 3, 15), strict=True):  # sorted, whatever the order given
        np.testing.assert_allclose(row, subband_frequencies(subband, 8))


def test_calibrated_has_corrected_data_equal_to_data(written: WrittenSets) -> None:
    with table(str(written.calibrated), ack=False) as main:
        assert "CORRECTED_DATA" in main.colnames()
        data = main.getcol("DATA")
        corrected = main.getcol("CORRECTED_DATA")
    assert corrected.shape == data.shape and corrected.dtype == data.dtype
    np.testing.assert_array_equal(corrected, data)
    assert np.abs(data).sum() > 0  # not both zero


def test_plain_has_no_corrected_data(written: WrittenSets) -> None:
    with table(str(written.plain), ack=False) as main:
        assert "CORRECTED_DATA" not in main.colnames()


def test_rewrite_replaces_the_set(tmp_path: Path) -> None:
    first = synthetic.write_ms(tmp_path, START, subbands=(0,), calibrated=True)
    again = synthetic.write_ms(tmp_path, START, subbands=(0, 1))
    assert again == first
    with table(str(again), ack=False) as main:
        assert "CORRECTED_DATA" not in main.colnames()
    with table(str(again / "SPECTRAL_WINDOW"), ack=False) as spw:
        assert int(spw.getcol("NUM_CHAN").sum()) == 8


def test_no_warning_escapes_the_writer(tmp_path: Path) -> None:
    synthetic.make_ms_uvdata(START, subbands=(2,))  # pyuvdata imported (its import may warn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        synthetic.write_ms(tmp_path, START, subbands=(2,))
    assert [str(w.message) for w in caught] == []


def test_no_subbands_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one subband"):
        synthetic.write_ms(tmp_path / "out", START, subbands=())
    assert not (tmp_path / "out").exists()


def test_broken_no_tables(tmp_path: Path) -> None:
    path = synthetic.write_broken_ms(tmp_path, START, "no_tables")
    assert path.name == "2026-01-01T00:05:00.ms" and path.is_dir()
    assert not (path / "table.dat").exists()


def test_broken_truncated(tmp_path: Path) -> None:
    path = synthetic.write_broken_ms(tmp_path, START, "truncated", name="cut.ms")
    intact = synthetic.write_ms(tmp_path / "intact", START, subbands=(0, 1))
    size = (path / "table.dat").stat().st_size
    assert 0 < size < (intact / "table.dat").stat().st_size


def test_broken_no_spectral_window(tmp_path: Path) -> None:
    path = synthetic.write_broken_ms(tmp_path, START, "no_spectral_window")
    assert not (path / "SPECTRAL_WINDOW").exists()
    assert (path / "FIELD" / "table.dat").exists()
    with table(str(path), ack=False) as main:
        assert "SPECTRAL_WINDOW" not in main.getkeywords()
        assert "FIELD" in main.getkeywords()


def test_drop_subtable_can_leave_the_keyword(tmp_path: Path) -> None:
    path = synthetic.drop_subtable(
        synthetic.write_ms(tmp_path, START, subbands=(0,)), "SPECTRAL_WINDOW", keyword=False
    )
    assert not (path / "SPECTRAL_WINDOW").exists()
    with table(str(path), ack=False) as main:
        assert "SPECTRAL_WINDOW" in main.getkeywords()


def test_unknown_broken_kind_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown broken kind"):
        synthetic.write_broken_ms(tmp_path / "out", START, "gone")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_sample_sets(tmp_path: Path) -> None:
    """Good and calibrated sets read; each broken one fails with its own error class."""
    sets = synthetic.generate_sample_ms(tmp_path, start=dt.date(2026, 1, 1), per_day=2)
    assert [(s.kind, s.group_id) for s in sets] == [
        ("good", "2026-01-01T02:00:00"),
        ("calibrated", "2026-01-01T02:05:00"),
        ("no_tables", "2026-01-01T02:10:00"),
        ("truncated", "2026-01-01T02:15:00"),
        ("no_spectral_window", "2026-01-01T02:20:00"),
    ]
    errors = {
        "no_tables": NotCasaTableError,
        "truncated": CorruptCasaTableError,
        "no_spectral_window": MeasurementSetError,
    }
    for sample in sets:
        assert sample.path.name == f"{sample.group_id}.ms"
        if sample.kind in errors:
            with pytest.raises(errors[sample.kind]):
                read_ms(sample.path)
        else:
            summary = read_ms(sample.path)
            assert summary.hdf5_group == sample.group_id
            assert summary.has_corrected_data is (sample.kind == "calibrated")
