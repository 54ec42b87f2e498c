"""`measurement_sets_sensor` ticks on real measurement sets and databases: a run per changed
day, none for an unchanged tick, a new one when an MS is rewritten, the read budget honoured."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipeline_defs.definitions import build_definitions
from pipeline_defs.sensors.ms import SENSOR_NAME, measurement_sets_sensor
from resources.dagster_resources import Database
from resources.database import Databases
from resources.ms import synthetic
from resources.repositories import products as repo

START = dt.datetime(2026, 3, 1, 23, 55, tzinfo=dt.UTC)
DAY = START.date()
NEXT = START + dt.timedelta(minutes=10)  # the next day


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("ms_sensor")
    return [synthetic.write_ms(root, START, subbands=range(2)),
            synthetic.write_ms(root, NEXT, subbands=range(2))]  # fmt: skip


@pytest.fixture
def ms_dir(written: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "ms"
    for path in written:
        shutil.copytree(path, directory / path.name)
    monkeypatch.setenv("CONTIMG_MS_DIRS", str(directory))
    return directory


def tick(cursor: str | None = None) -> dg.SensorResult:
    with (
        dg.DagsterInstance.ephemeral() as instance,
        dg.build_sensor_context(
            cursor=cursor,
            resources={"database": Database()},
            instance=instance,
            definitions=build_definitions(),
        ) as context,
    ):
        result = measurement_sets_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_a_run_per_changed_day_and_none_when_nothing_changed(dbs: Databases, ms_dir: Path) -> None:
    first = tick()
    requests = {r.partition_key: r for r in first.run_requests or []}
    assert set(requests) == {DAY.isoformat(), NEXT.date().isoformat()}
    assert requests[DAY.isoformat()].run_key.startswith(f"{SENSOR_NAME}:{DAY.isoformat()}:")
    assert requests[DAY.isoformat()].tags["contimg/measurement_sets"] == "1"
    with dbs.connect("products") as conn:
        assert len(repo.list_ms(conn)) == 2

    again = tick(first.cursor)
    assert not again.run_requests
    assert "0 indexed, 2 unchanged" in (again.skip_reason.skip_message or "")

    synthetic.add_corrected_data(ms_dir / synthetic.ms_name(START))
    third = tick(again.cursor)
    assert [r.partition_key for r in third.run_requests or []] == [DAY.isoformat()]
    assert third.run_requests[0].run_key != requests[DAY.isoformat()].run_key


def test_the_read_budget_defers_the_rest(
    dbs: Databases, ms_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTIMG_SENSOR_MAX_HEADER_READS", "1")
    first = tick()
    assert [r.partition_key for r in first.run_requests or []] == [DAY.isoformat()]
    second = tick(first.cursor)
    assert [r.partition_key for r in second.run_requests or []] == [NEXT.date().isoformat()]
