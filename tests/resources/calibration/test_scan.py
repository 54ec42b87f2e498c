"""find_caltables and scan_directories on real tables and a real (SQLite) cal_registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from resources.calibration.scan import find_caltables, scan_directories, set_name_from_path
from resources.calibration.synthetic import write_broken_caltable, write_sample_set
from resources.repositories import cal_registry as repo
from tests.resources.repositories.catalogue_data import migrated


@pytest.fixture
def engine(data_dir: Path) -> Iterator[Engine]:
    engine = migrated("cal_registry", f"sqlite:///{data_dir / 'cal_registry.sqlite3'}")
    yield engine
    engine.dispose()


def test_set_name_from_path() -> None:
    assert set_name_from_path("/x/2026-01-01_3C286_bpcal") == "2026-01-01_3C286"
    assert set_name_from_path("/x/2026-01-01_3C286_flux.cal/") == "2026-01-01_3C286"
    assert set_name_from_path("/x/other") == "other"


def test_find_skips_hidden_dirs_and_does_not_descend_into_tables(tmp_path: Path) -> None:
    root = tmp_path / "cal"
    write_sample_set(root / "2026" / "01", "a", 61041.0, 61041.5, types=("BP",))
    write_sample_set(root / ".scratch", "hidden", 61041.0, 61041.5, types=("GP",))
    # a caltable-named directory inside a caltable is the table's business, not ours
    write_sample_set(root / "a_gpcal_dir" / "b_gpcal", "inner", 61041.0, 61041.5, types=("K",))
    (root / "notes_gpcal.txt").write_text("a file, not a table")
    found, missing = find_caltables([root, tmp_path / "absent"])
    assert [p.relative_to(root).as_posix() for p in found] == [
        "2026/01/a_bpcal",
        "a_gpcal_dir/b_gpcal",
    ]
    assert missing == [tmp_path / "absent"]


def test_scan_registers_new_sets_and_reports_failures(tmp_path: Path, engine: Engine) -> None:
    root = tmp_path / "cal"
    write_sample_set(root, "2026-01-01_3C286", 61041.0, 61041.5)
    write_sample_set(root / "later", "2026-01-02_3C286", 61042.0, 61042.5)
    write_sample_set(root / "clash", "2026-01-01b_3C286", 61041.2, 61041.3, types=("BP",))
    bad = write_broken_caltable(root / "bad_gpcal")
    empty = write_broken_caltable(root / "empty_kcal", "no-table-dat")

    result = scan_directories(engine, [root])
    assert result.found == 9 and result.known == 0
    assert result.sets == ["2026-01-01_3C286", "2026-01-02_3C286"]
    assert len(result.registered) == 6
    by_path = {f.path: f for f in result.failures}
    assert by_path[str(bad)].error_class == "CorruptCasaTableError"
    assert by_path[str(empty)].error_class == "NotCasaTableError"
    clash = by_path[str(root / "clash" / "2026-01-01b_3C286_bpcal")]
    assert clash.error_class == "CalibrationConflictError" and "2026-01-01_3C286" in clash.message
    assert result.summary() == (
        "9 calibration tables under 1 directory, 6 new, 0 known, 2 unreadable, 1 refused (overlap)"
    )
    windows = {
        r.set_name: (r.valid_start_mjd, r.valid_end_mjd) for r in repo.list_caltables(engine)
    }
    assert windows["2026-01-02_3C286"] == pytest.approx((61042.0, 61042.5))
    assert "2026-01-01b_3C286" not in windows

    again = scan_directories(engine, [root, tmp_path / "absent"])
    assert again.registered == [] and again.known == 6 and len(again.failures) == 3
    assert again.summary().endswith(f"missing dirs: {tmp_path / 'absent'}")
