"""caltables_sensor evaluated as the daemon does (a fresh context per tick), on real CASA tables
and a real migrated cal_registry: it registers, requests no run, and logs what it refused."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from pipeline_defs.sensors.caltables import SENSOR_NAME, caltables_sensor
from resources.calibration.synthetic import write_broken_caltable, write_sample_set
from resources.dagster_resources import Database
from resources.database import Databases
from resources.repositories import cal_registry as repo
from tests.pipeline_defs.sensors.support import ListHandler


@pytest.fixture
def caldir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "caltables"
    directory.mkdir()
    monkeypatch.setenv("CONTIMG_CALTABLE_DIRS", str(directory))
    return directory


def tick() -> tuple[dg.SensorResult, ListHandler]:
    handler = ListHandler()
    with dg.build_sensor_context(resources={"database": Database()}) as context:
        context.log.addHandler(handler)
        result = caltables_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result, handler


def skip_message(result: dg.SensorResult) -> str:
    assert result.skip_reason is not None and not result.run_requests
    return result.skip_reason.skip_message or ""


def test_registers_new_tables_and_logs_refusals(dbs: Databases, caldir: Path) -> None:
    assert caltables_sensor.name == SENSOR_NAME
    assert caltables_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert caltables_sensor.minimum_interval_seconds == 60
    assert not caltables_sensor.targets  # it only registers

    write_sample_set(caldir, "2026-01-01_3C286", 61041.0, 61041.5)
    write_sample_set(caldir / "late", "2026-01-01b_3C286", 61041.2, 61041.8, types=("GP",))
    write_broken_caltable(caldir / "bad_bpcal")
    result, handler = tick()
    assert skip_message(result) == (
        "5 calibration tables under 1 directory, 3 new, 0 known, 1 unreadable, 1 refused (overlap)"
    )
    warnings = handler.messages(logging.WARNING)
    assert len(warnings) == 2
    assert warnings[0].startswith("not registered: CorruptCasaTableError: ")
    assert "bad_bpcal" in warnings[0]
    assert warnings[1].startswith("not registered: CalibrationConflictError: ")
    assert "overlaps active set 2026-01-01_3C286" in warnings[1]
    engine = dbs.engine("cal_registry")
    assert {r.set_name for r in repo.list_caltables(engine)} == {"2026-01-01_3C286"}

    again, _ = tick()
    assert "0 new, 3 known" in skip_message(again)


def test_missing_directory_is_reported_not_raised(
    dbs: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "not_mounted"
    monkeypatch.setenv("CONTIMG_CALTABLE_DIRS", str(absent))
    result, _ = tick()
    assert skip_message(result).endswith(f"missing dirs: {absent}")
