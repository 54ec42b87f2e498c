"""`measurement_sets` run by Dagster in process (its own job), on real MSs, caltables, UVH5 files
and databases: the index, the image links, the calibration copied from the registry, and the
three checks passing, then failing when the registry changes under them.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, insert, select

from assets.ms.definitions import (
    ASSET_NAME,
    CALIBRATED_CHECK,
    OVERLAP_CHECK,
    RETIRED_CHECK,
)
from pipeline_defs.definitions import build_definitions
from resources.database import Databases
from resources.repositories import cal_registry
from resources.repositories import products as repo
from tests.assets.ms import scenario

DAY = scenario.DAY
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> scenario.Files:
    return scenario.write_files(tmp_path_factory.mktemp("upstream"))


@pytest.fixture
def files(
    written: scenario.Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> scenario.Files:
    placed = scenario.place(written, tmp_path / "site")
    monkeypatch.setenv("CONTIMG_MS_DIRS", str(placed.ms))
    monkeypatch.setenv("CONTIMG_HDF5_DIRS", str(placed.hdf5))
    return placed


def run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions().resolve_job_def("measurement_sets_job")
    return job.execute_in_process(
        partition_key=DAY.isoformat(), instance=instance, run_config=QUIET, raise_on_error=False
    )


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = [
        e for e in result.asset_materializations_for_node(ASSET_NAME) if e.partition == str(DAY)
    ]
    return {k: v.value for k, v in event.metadata.items()}


def verdicts(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.check_name: e for e in result.get_asset_check_evaluations() if e.partition == str(DAY)
    }


def test_a_day_is_indexed_linked_and_passes(dbs: Databases, files: scenario.Files) -> None:
    applied = scenario.register_upstream(dbs, files)
    instance = dg.DagsterInstance.ephemeral()
    result = run(instance)
    assert result.success

    meta = metadata_of(result)
    assert (meta["measurement_sets"], meta["failed"], meta["images_linked"]) == (2, 1, 2)
    assert (meta["stage_imaged"], meta["stage_calibrated"], meta["stage_converted"]) == (1, 0, 1)
    assert "CorruptCasaTableError" in meta["unreadable"]
    with dbs.connect("products") as conn:
        first = repo.get_ms(conn, str(scenario.first_ms(files)))
    assert first is not None and first.cal_set_name == "S1" and first.calibrated
    assert first.hdf5_group == scenario.START.strftime(scenario.STAMP)
    assert f"| {first.hdf5_group} |" in meta["measurement_sets_table"]

    checks = verdicts(result)
    assert set(checks) == {CALIBRATED_CHECK, RETIRED_CHECK, OVERLAP_CHECK}
    assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
    assert len(applied) == 3

    # A second run finds nothing new and changes no row.
    with dbs.connect("products") as conn:
        before = conn.execute(select(repo.MS_INDEX)).mappings().all()
    again = run(instance)
    assert (
        again.success
        and "0 indexed"
        in again.asset_materializations_for_node(ASSET_NAME)[-1].metadata["scan"].value
    )
    with dbs.connect("products") as conn:
        assert conn.execute(select(repo.MS_INDEX)).mappings().all() == before


def test_checks_fail_when_the_registry_changes(dbs: Databases, files: scenario.Files) -> None:
    scenario.register_upstream(dbs, files)
    cal = dbs.engine("cal_registry")
    assert cal_registry.retire(cal, set_name="S1") == 3
    # An active pair that `cal register` would refuse, as an older tool could have written it.
    lo, hi = scenario.day_mjd_range(DAY)
    with cal.begin() as conn:
        for name in ("OLD", "NEW"):
            conn.execute(
                insert(cal_registry.CALTABLES).values(
                    set_name=name, path=f"/cal/{name}_bpcal", table_type="BP", apply_order=30,
                    valid_start_mjd=lo, valid_end_mjd=hi, status="active",
                )
            )  # fmt: skip
    result = run(dg.DagsterInstance.ephemeral())
    assert result.success  # warnings, not failures of the run
    checks = verdicts(result)
    assert not checks[RETIRED_CHECK].passed
    assert "retired tables applied to 1 MSs" in (checks[RETIRED_CHECK].description or "")
    assert not checks[OVERLAP_CHECK].passed
    assert "OLD" in (checks[OVERLAP_CHECK].description or "")
    # the two new BP tables apply (newest set): every MS has an applicable set again
    assert checks[CALIBRATED_CHECK].passed
    with cal.begin() as conn:
        conn.execute(
            cal_registry.CALTABLES.delete().where(
                cal_registry.CALTABLES.c.set_name.in_(["OLD", "NEW"])
            )
        )
    result = run(dg.DagsterInstance.ephemeral())
    checks = verdicts(result)
    assert not checks[CALIBRATED_CHECK].passed
    assert "2 of 2 MSs have no applicable calibration set" in (
        checks[CALIBRATED_CHECK].description or ""
    )
    assert checks[OVERLAP_CHECK].passed


def test_without_ms_dirs_the_day_is_empty_and_passes(
    dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTIMG_MS_DIRS", str(tmp_path / "not-mounted"))
    result = run(dg.DagsterInstance.ephemeral())
    assert result.success
    meta = metadata_of(result)
    assert (
        meta["measurement_sets"] == 0
        and "missing dirs"
        in result.asset_materializations_for_node(ASSET_NAME)[-1].metadata["scan"].value
    )
    with dbs.connect("products") as conn:
        assert conn.execute(select(func.count()).select_from(repo.MS_INDEX)).scalar_one() == 0
    assert all(c.passed for c in verdicts(result).values())
