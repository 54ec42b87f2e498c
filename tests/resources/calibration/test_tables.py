"""read_caltable on real CASA tables written by python-casacore, and every way it refuses one."""

from __future__ import annotations

from pathlib import Path

import pytest
from casacore.tables import makescacoldesc, maketabdesc, table

from resources.calibration.synthetic import write_broken_caltable, write_caltable, write_sample_set
from resources.calibration.tables import read_caltable
from resources.errors import (
    CaltableError,
    CasaTableError,
    CorruptCasaTableError,
    FileNameError,
    NotCasaTableError,
)


def test_reads_type_window_field_and_refant(tmp_path: Path) -> None:
    paths = write_sample_set(tmp_path, "2026-01-01_3C286", 61041.25, 61041.75)
    assert [p.name for p in paths] == [
        "2026-01-01_3C286_kcal",
        "2026-01-01_3C286_bpcal",
        "2026-01-01_3C286_gpcal",
    ]
    infos = [read_caltable(p) for p in paths]
    assert [(i.table_type, i.apply_order) for i in infos] == [("K", 10), ("BP", 30), ("GP", 50)]
    for i, path in zip(infos, paths, strict=True):
        assert i.path == str(path.resolve())
        assert i.start_mjd == pytest.approx(61041.25, abs=1e-9)
        assert i.end_mjd == pytest.approx(61041.75, abs=1e-9)
        assert i.n_rows == 12 and i.cal_field == "3C286" and i.refant == "pad103"
        assert i.size_bytes == (path / "table.dat").stat().st_size > 0
        assert i.mtime_ns == (path / "table.dat").stat().st_mtime_ns
    # the table really is a CASA calibration table: K delays are floats, gains complex
    with table(str(paths[0]), ack=False) as k, table(str(paths[2]), ack=False) as g:
        assert "FPARAM" in k.colnames() and "CPARAM" in g.colnames()
        assert k.getkeyword("VisCal") == "K Jones" and g.getkeyword("ParType") == "Complex"


def test_relative_path_is_resolved_and_no_refant_or_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_caltable(tmp_path / "x_2gcal", 61000.0, 61000.0, refant=None, field="")
    monkeypatch.chdir(tmp_path)
    found = read_caltable("x_2gcal")
    assert found.path == str(path.resolve()) and found.table_type == "2G"
    assert found.start_mjd == found.end_mjd == pytest.approx(61000.0)
    assert found.refant is None and found.cal_field is None


def test_missing_file_and_no_table_dat_are_not_casa_tables(tmp_path: Path) -> None:
    plain = tmp_path / "plain_gpcal"
    plain.write_text("not a table")
    cases = {
        tmp_path / "absent_gpcal": "does not exist",
        plain: "is not a directory",
        write_broken_caltable(tmp_path / "empty_gpcal", "no-table-dat"): "holds no table.dat",
    }
    for path, says in cases.items():
        with pytest.raises(NotCasaTableError) as caught:
            read_caltable(path)
        assert says in str(caught.value) and str(path) in str(caught.value)
        assert "\n" not in str(caught.value)


def test_truncated_table_is_corrupt_in_one_line(tmp_path: Path) -> None:
    path = write_broken_caltable(tmp_path / "cut_bpcal")
    with pytest.raises(CorruptCasaTableError) as caught:
        read_caltable(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: casacore cannot read it") and "\n" not in message


def test_no_time_column_or_no_rows(tmp_path: Path) -> None:
    no_time = tmp_path / "notime_gpcal"
    table(str(no_time), maketabdesc([makescacoldesc("FIELD_ID", 0)]), nrow=2, ack=False).close()
    empty = tmp_path / "empty_gpcal"
    table(str(empty), maketabdesc([makescacoldesc("TIME", 0.0)]), nrow=0, ack=False).close()
    with pytest.raises(CaltableError, match="has no TIME column"):
        read_caltable(no_time)
    with pytest.raises(CaltableError, match="has no rows"):
        read_caltable(empty)


def test_unknown_suffix_is_refused_before_opening(tmp_path: Path) -> None:
    path = write_caltable(tmp_path / "solution.tbl", 61000.0, 61000.5, table_type="GP")
    with pytest.raises(FileNameError, match="unknown calibration table suffix"):
        read_caltable(path)
    assert not issubclass(FileNameError, CasaTableError)  # callers catch both on purpose
