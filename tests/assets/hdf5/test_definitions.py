"""`subband_groups` run by Dagster in process (its own job), on real databases and UVH5 files.

A night of four observations (complete; sb07 missing; sb03 twice; one file truncated) warns;
a complete day passes; a re-run changes no row; a range run records each day's verdict on
that day.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from assets.hdf5.definitions import ASSET_NAME, COMPLETE_CHECK
from pipeline_defs.definitions import build_definitions
from resources.database import Databases
from resources.hdf5 import synthetic
from resources.models.hdf5 import parse_hdf5_name
from resources.repositories import hdf5 as repo
from tests.resources.hdf5.files import START, Observation

DAY = START.date()
NEXT_DAY = DAY + dt.timedelta(days=1)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def write_night(observation: Observation) -> dict[str, Path]:
    """12:00 complete; 12:05 without sb07; 12:10 with sb03 twice; 12:15 with a truncated file."""
    observation(START, seed=1)
    observation(START + dt.timedelta(minutes=5), subbands=[sb for sb in range(16) if sb != 7])
    third = observation(START + dt.timedelta(minutes=10), seed=3)
    sb03 = next(p for p in third if parse_hdf5_name(p).subband == 3)
    duplicate = synthetic.duplicate_subband(sb03, delay_s=5)
    fourth = observation(START + dt.timedelta(minutes=15), seed=4)
    corrupt = synthetic.corrupt_file(max(fourth, key=lambda p: p.name))  # not the group's id
    return {"duplicate": duplicate, "corrupt": corrupt}


def run(
    instance: dg.DagsterInstance,
    day: dt.date | None = DAY,
    *,
    tags: dict[str, str] | None = None,
    config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    job = build_definitions().resolve_job_def("subband_groups_job")
    run_config: dict = {**QUIET}
    if config:
        run_config["ops"] = {ASSET_NAME: {"config": config}}
    return job.execute_in_process(
        partition_key=day.isoformat() if day else None,
        tags=tags,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        e.partition or "": {k: v.value for k, v in e.metadata.items()}
        for e in result.asset_materializations_for_node(ASSET_NAME)
    }


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.partition or "": e
        for e in result.get_asset_check_evaluations()
        if e.check_name == COMPLETE_CHECK
    }


def assignment(dbs: Databases) -> dict[str, str | None]:
    with dbs.connect("hdf5") as conn:
        rows = conn.execute(repo.HDF5_FILES.select()).mappings().all()
    return {r["path"]: r["group_id"] for r in rows}


def test_a_night_groups_warns_and_lists_the_corrupt_file(
    dbs: Databases, observation: Observation
) -> None:
    cases = write_night(observation)
    instance = dg.DagsterInstance.ephemeral()
    result = run(instance)
    assert result.success

    meta = metadata_of(result)[DAY.isoformat()]
    assert (meta["groups"], meta["complete"], meta["incomplete"]) == (4, 2, 2)
    assert meta["failed_files"] == 1
    assert meta["dagster/partition_row_count"] == 16 + 15 + 17 + 15
    table = meta["incomplete_groups"]
    assert "| 2025-10-05T12:05:00 | 15 | 7 | - |" in table
    assert "2025-10-05T12:15:00" in table
    assert cases["corrupt"].name in meta["unreadable_files"]

    check = evaluations(result)[DAY.isoformat()]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == "2025-10-05: 2 of 4 groups complete (50.0%), below 95%"
    assert "2025-10-05T12:05:00" in check.metadata["incomplete_groups"].value
    assert check.target_materialization_data is not None

    groups = {g.group_id: g for g in repo.day_groups(dbs.engine("hdf5"), DAY)}
    assert groups["2025-10-05T12:10:00"].duplicates == [3]
    assert groups["2025-10-05T12:10:00"].complete
    assert groups["2025-10-05T12:15:00"].n_files == 15
    assert all(str(cases["corrupt"]) not in g.paths for g in groups.values())
    failed = repo.day_failures(dbs.engine("hdf5"), DAY)
    assert [(f.path, f.error_class) for f in failed] == [
        (str(cases["corrupt"]), "CorruptHDF5Error")
    ]


def test_a_rerun_changes_no_row(dbs: Databases, observation: Observation) -> None:
    write_night(observation)
    instance = dg.DagsterInstance.ephemeral()
    assert run(instance).success
    counts, groups = repo.counts(dbs.engine("hdf5")), assignment(dbs)
    with dbs.connect("hdf5") as conn:
        stamps = {r.path: r.updated_at for r in conn.execute(repo.HDF5_FILES.select())}
    second = run(instance)
    assert second.success
    assert repo.counts(dbs.engine("hdf5")) == counts == {"hdf5_files": 63, "hdf5_failures": 1}
    assert assignment(dbs) == groups
    with dbs.connect("hdf5") as conn:
        assert {r.path: r.updated_at for r in conn.execute(repo.HDF5_FILES.select())} == stamps
    assert "0 new, 0 changed, 64 unchanged" in metadata_of(second)[DAY.isoformat()]["scan"]


def test_a_complete_day_passes_and_a_range_run_records_each_day(
    dbs: Databases, observation: Observation
) -> None:
    write_night(observation)
    for k in range(3):
        observation(START + dt.timedelta(days=1, minutes=5 * k), seed=10 + k)
    instance = dg.DagsterInstance.ephemeral()
    result = run(
        instance,
        None,
        tags={
            "dagster/asset_partition_range_start": DAY.isoformat(),
            "dagster/asset_partition_range_end": NEXT_DAY.isoformat(),
        },
    )
    assert result.success
    meta = metadata_of(result)
    assert meta[DAY.isoformat()]["groups"] == 4
    assert (meta[NEXT_DAY.isoformat()]["groups"], meta[NEXT_DAY.isoformat()]["complete"]) == (3, 3)
    checks = evaluations(result)
    assert not checks[DAY.isoformat()].passed
    assert checks[NEXT_DAY.isoformat()].passed
    assert checks[NEXT_DAY.isoformat()].description == (
        "2025-10-06: 3 of 3 groups complete (100.0%), at least 95%"
    )


def test_tolerance_and_the_limit_are_run_config(dbs: Databases, observation: Observation) -> None:
    write_night(observation)
    instance = dg.DagsterInstance.ephemeral()
    # 30 s splits jittered observations (files up to 45 s late); a limit of 0 passes anything
    result = run(instance, config={"tolerance_s": 30, "min_complete_fraction": 0.0})
    assert result.success
    assert metadata_of(result)[DAY.isoformat()]["groups"] > 4
    assert evaluations(result)[DAY.isoformat()].passed
    # back to the default: the files return to their four groups
    assert metadata_of(run(instance))[DAY.isoformat()]["groups"] == 4


def test_without_the_scan_only_registered_files_are_grouped(
    dbs: Databases, observation: Observation
) -> None:
    write_night(observation)
    result = run(dg.DagsterInstance.ephemeral(), config={"scan": False})
    assert result.success
    assert metadata_of(result)[DAY.isoformat()]["groups"] == 0
    assert evaluations(result)[DAY.isoformat()].passed  # nothing is incomplete


def test_a_regroup_that_changes_a_day_outside_the_run_says_so(
    dbs: Databases, observation: Observation
) -> None:
    """23:59:30, 00:00:20, 00:00:50, 00:01:20: with 60 s two groups, one per day; with 120 s one
    group of DAY, which takes the next day's files: the run of DAY names the next day."""
    midnight = dt.datetime.combine(NEXT_DAY, dt.time(), tzinfo=dt.UTC)
    for seconds, subband in ((-30, 0), (20, 1), (50, 2), (80, 3)):
        observation(midnight + dt.timedelta(seconds=seconds), subbands=[subband], max_jitter_s=0)
    instance = dg.DagsterInstance.ephemeral()
    assert run(instance).success
    assert [g.group_id for g in repo.day_groups(dbs.engine("hdf5"), NEXT_DAY)] == [
        f"{NEXT_DAY.isoformat()}T00:00:50"
    ]
    result = run(instance, config={"tolerance_s": 120})
    assert result.success
    assert repo.day_groups(dbs.engine("hdf5"), NEXT_DAY) == []
    (group,) = repo.day_groups(dbs.engine("hdf5"), DAY)
    assert group.n_files == 4
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(
        f"changed the groups of {NEXT_DAY.isoformat()}: materialize those days again" in m
        for m in messages
    )
    assert repo.counts(dbs.engine("hdf5")) == {"hdf5_files": 4, "hdf5_failures": 0}
