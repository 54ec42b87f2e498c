"""hdf5_files_sensor evaluated as the daemon does (fresh context per tick, the previous cursor),
on real databases, real UVH5 files and a real Dagster instance; the run it asks for is run."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from pipeline_defs.definitions import build_definitions
from pipeline_defs.sensors.hdf5 import SENSOR_NAME, hdf5_files_sensor
from resources.dagster_resources import Database
from resources.database import Databases
from resources.hdf5 import synthetic
from resources.repositories import hdf5 as repo
from tests.pipeline_defs.sensors.support import ListHandler
from tests.resources.hdf5.files import START, Observation

DAY = START.date()
SENSOR_JOB = "subband_groups_job"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def tick(
    instance: dg.DagsterInstance, cursor: str | None = None
) -> tuple[dg.SensorResult, ListHandler]:
    handler = ListHandler()
    with dg.build_sensor_context(
        cursor=cursor,
        resources={"database": Database()},
        instance=instance,
        definitions=build_definitions(),
    ) as context:
        context.log.addHandler(handler)
        result = hdf5_files_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result, handler


def test_registers_files_and_requests_one_run_per_changed_day(
    dbs: Databases, observation: Observation, instance: dg.DagsterInstance
) -> None:
    first_day = observation(START)
    observation(START + dt.timedelta(days=1), subbands=range(15))
    result, _ = tick(instance)
    assert repo.counts(dbs.engine("hdf5")) == {"hdf5_files": 31, "hdf5_failures": 0}
    requests = {r.partition_key: r for r in result.run_requests or []}
    assert set(requests) == {DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()}
    request = requests[DAY.isoformat()]
    assert request.run_key and request.run_key.startswith(f"{SENSOR_NAME}:{DAY.isoformat()}:")
    assert request.tags["contimg/groups"] == "1"
    assert (
        requests[(DAY + dt.timedelta(days=1)).isoformat()].tags["contimg/incomplete_groups"] == "1"
    )
    assert result.cursor is not None

    # nothing changed: no request, and the tick says what it saw
    again, _ = tick(instance, result.cursor)
    assert not again.run_requests
    assert again.skip_reason is not None
    assert "0 new, 0 changed, 31 unchanged" in (again.skip_reason.skip_message or "")

    # a re-write of one subband: a new key for that day only
    synthetic.duplicate_subband(first_day[0], delay_s=10)
    third, _ = tick(instance, again.cursor)
    (late,) = third.run_requests or []
    assert late.partition_key == DAY.isoformat() and late.run_key != request.run_key

    # the requested run materializes the day and records its check
    job = build_definitions().resolve_job_def(SENSOR_JOB)
    run = job.execute_in_process(
        partition_key=late.partition_key, tags=late.tags, instance=instance
    )
    assert run.success
    (evaluation,) = run.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.partition == DAY.isoformat()


def test_an_unreadable_file_is_logged_and_its_day_requested(
    dbs: Databases, observation: Observation, instance: dg.DagsterInstance, raw: Path
) -> None:
    paths = observation(START)
    broken = synthetic.corrupt_file(max(paths, key=lambda p: p.name))
    stray = synthetic.write_not_hdf5(raw / "notes.hdf5")  # no date in the name: its mtime's
    result, log = tick(instance)
    warnings = "\n".join(log.messages(logging.WARNING))
    assert str(broken) in warnings and str(stray) in warnings
    assert DAY.isoformat() in {r.partition_key for r in result.run_requests or []}
    assert repo.counts(dbs.engine("hdf5")) == {"hdf5_files": 15, "hdf5_failures": 2}
    assert [f.path for f in repo.day_failures(dbs.engine("hdf5"), DAY)] == [str(broken)]


def test_days_over_the_run_limit_wait_for_the_next_tick(
    dbs: Databases,
    observation: Observation,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTIMG_SENSOR_MAX_RUNS_PER_TICK", "1")
    for k in range(3):
        observation(START + dt.timedelta(days=k), subbands=[0, 1])
    first, _ = tick(instance)
    assert [r.partition_key for r in first.run_requests or []] == [DAY.isoformat()]
    assert json.loads(first.cursor or "{}")["pending"] == [
        (DAY + dt.timedelta(days=k)).isoformat() for k in (1, 2)
    ]
    second, _ = tick(instance, first.cursor)
    assert [r.partition_key for r in second.run_requests or []] == [
        (DAY + dt.timedelta(days=1)).isoformat()
    ]
    third, _ = tick(instance, second.cursor)
    assert [r.partition_key for r in third.run_requests or []] == [
        (DAY + dt.timedelta(days=2)).isoformat()
    ]
    assert not tick(instance, third.cursor)[0].run_requests


def test_the_header_budget_leaves_the_rest_for_the_next_tick(
    dbs: Databases,
    observation: Observation,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTIMG_SENSOR_MAX_HEADER_READS", "10")
    observation(START)
    first, _ = tick(instance)
    assert repo.counts(dbs.engine("hdf5"))["hdf5_files"] == 10
    assert "6 left for the next scan" in json.loads(first.cursor or "{}")["last_scan"]
    second, _ = tick(instance, first.cursor)
    assert repo.counts(dbs.engine("hdf5"))["hdf5_files"] == 16
    assert second.run_requests  # the day changed again: complete now


def test_a_late_file_before_midnight_requests_the_next_day_too(
    dbs: Databases, observation: Observation, instance: dg.DagsterInstance
) -> None:
    """23:59:50, 00:00:30, 00:00:45 are one group of DAY; a late 23:59:20 file (named on DAY)
    starts it earlier, so the files after midnight open a group of the next day: both days
    are asked for."""
    midnight = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    for seconds, subband in ((-10, 0), (30, 1), (45, 2)):
        observation(midnight + dt.timedelta(seconds=seconds), subbands=[subband], max_jitter_s=0)
    first, _ = tick(instance)
    assert {g.group_id for g in repo.day_groups(dbs.engine("hdf5"), DAY)} == {
        f"{DAY.isoformat()}T23:59:50"
    }
    observation(midnight - dt.timedelta(seconds=40), subbands=[3], max_jitter_s=0)
    second, _ = tick(instance, first.cursor)
    next_day = (DAY + dt.timedelta(days=1)).isoformat()
    assert sorted(r.partition_key or "" for r in second.run_requests or []) == [
        DAY.isoformat(),
        next_day,
    ]
    assert [g.group_id for g in repo.day_groups(dbs.engine("hdf5"), DAY)] == [
        f"{DAY.isoformat()}T23:59:20"
    ]
    assert [
        g.group_id for g in repo.day_groups(dbs.engine("hdf5"), DAY + dt.timedelta(days=1))
    ] == [f"{next_day}T00:00:30"]


def test_off_by_default() -> None:
    assert hdf5_files_sensor.default_status == dg.DefaultSensorStatus.STOPPED
