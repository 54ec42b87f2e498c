"""The embedded default's event log: Dagster's SQLite files and tables, cheaper writes.

A home written by `contimg init-home` uses `ContimgSqliteEventLogStorage`; what it stores, the
stock storage reads (and back), its connections commit with WAL synchronous=NORMAL and stay open
between writes for a bounded number of files, shared safely with other processes and forks.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import (
    AssetMaterializationPlannedData,
    DagsterEvent,
    StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from pipeline_defs.event_log import EVENT_LOG_DIR, OPEN_SHARDS, ContimgSqliteEventLogStorage
from pipeline_defs.instance import ensure_dagster_home

ROOT = Path(__file__).resolve().parents[2]


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
def tiny(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info("hello")
    return dg.MaterializeResult(metadata={"n": 1})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return ensure_dagster_home()


def _materialize(instance: dg.DagsterInstance, partition: str) -> str:
    result = dg.materialize([tiny], instance=instance, partition_key=partition)
    assert result.success
    return result.run_id


def test_init_home_writes_an_instance_with_the_cheaper_event_log(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, ContimgSqliteEventLogStorage)
        run_id = _materialize(instance, "a")
        with storage.run_connection(run_id) as conn:
            (level,) = conn.exec_driver_sql("PRAGMA synchronous").one()
        assert level == 1  # NORMAL (FULL is 2)
        ours = [e.dagster_event_type for e in instance.all_logs(run_id) if e.is_dagster_event]
        assert dg.DagsterEventType.ASSET_MATERIALIZATION in ours
    # Dagster's default files, where the stock storage keeps them
    assert (home / EVENT_LOG_DIR / "index.db").is_file()
    assert (home / EVENT_LOG_DIR / f"{run_id}.db").is_file()


def test_the_stock_storage_reads_what_it_wrote_and_back(home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        first = _materialize(instance, "a")
        written = [e.message for e in instance.all_logs(first)]
    stock = SqliteEventLogStorage(str(home / EVENT_LOG_DIR))
    try:
        assert [e.message for e in stock.get_logs_for_run(first)] == written
        key = dg.AssetKey("tiny")
        assert stock.get_materialized_partitions(key) == {"a"}
        # the stock storage writes a materialization; ours reads it like its own
        mat = dg.AssetMaterialization(asset_key="tiny", partition="b")
        stock.store_event(
            EventLogEntry(
                error_info=None,
                level=20,
                user_message="",
                run_id=first,
                timestamp=1.0,
                dagster_event=DagsterEvent(
                    event_type_value=dg.DagsterEventType.ASSET_MATERIALIZATION.value,
                    job_name="__ASSET_JOB",
                    event_specific_data=StepMaterializationData(mat),
                ),
            )
        )
    finally:
        stock.dispose()
    with dg.DagsterInstance.get() as instance:
        assert instance.event_log_storage.get_materialized_partitions(dg.AssetKey("tiny")) == {
            "a",
            "b",
        }


def test_a_home_opened_by_path_reads_its_own_events_whatever_dagster_home_says(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI, a test or a tool may open a home by its path while DAGSTER_HOME names another:
    the event log is where this home's dagster.yaml says, not where the environment points."""
    with dg.DagsterInstance.get() as instance:
        run_id = _materialize(instance, "a")
    assert '"@DAGSTER_HOME@"' not in (home / "dagster.yaml").read_text()
    other = tmp_path / "another_home"
    other.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(other))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("tiny"))
        assert event is not None and event.run_id == run_id
    monkeypatch.delenv("DAGSTER_HOME")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_latest_materialization_event(dg.AssetKey("tiny")) is not None
    assert not (other / EVENT_LOG_DIR).exists()


def test_a_relative_base_dir_is_refused_in_one_line(tmp_path: Path) -> None:
    from resources.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="not the absolute path of the Dagster home"):
        ContimgSqliteEventLogStorage("@DAGSTER_HOME@")


# --- connections kept between writes, bounded --------------------------------------------------


def _planned(run_id: str, partition: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level=10,
        user_message="",
        run_id=run_id,
        timestamp=1.0,
        dagster_event=DagsterEvent.build_asset_materialization_planned_event(
            "job", "step", AssetMaterializationPlannedData(dg.AssetKey("tiny"), partition=partition)
        ),
    )


def _open_shards(directory: Path) -> set[str]:
    """The event-log files this process holds open (from /proc, not from the storage)."""
    names: set[str] = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.parent == directory and target.suffix == ".db":
            names.add(target.stem)
    return names


def test_connections_stay_open_between_writes_for_a_bounded_number_of_files(
    tmp_path: Path,
) -> None:
    storage = ContimgSqliteEventLogStorage(str(tmp_path))
    directory = tmp_path / EVENT_LOG_DIR
    try:
        storage.store_event(_planned("run-0", "a"))
        # the write's connections are kept: the next write opens nothing
        assert _open_shards(directory) == {"index", "run-0"}
        runs = [f"run-{i}" for i in range(3 * OPEN_SHARDS)]
        for run_id in runs:
            storage.store_event(_planned(run_id, "a"))
        held = _open_shards(directory)
        assert len(held) <= OPEN_SHARDS
        assert runs[-1] in held  # the ones used last stay
        # every write landed, on whichever connection
        for run_id in runs:
            assert len(storage.get_logs_for_run(run_id)) == 1 + (run_id == "run-0")
    finally:
        storage.dispose()
    assert _open_shards(directory) == set()


def test_another_process_writing_meanwhile_is_read_and_not_lost(tmp_path: Path) -> None:
    """The webserver, the daemon and run processes share the files while each keeps its own
    connections open: writes in between from a second process are seen, none is lost."""
    ours = ContimgSqliteEventLogStorage(str(tmp_path))
    script = (
        "import sys\n"
        "from pipeline_defs.event_log import ContimgSqliteEventLogStorage\n"
        "from tests.pipeline_defs.test_event_log import _planned\n"
        "s = ContimgSqliteEventLogStorage(sys.argv[1])\n"
        "for i in range(5):\n"
        "    s.store_event(_planned('shared', f'theirs-{i}'))\n"
        "s.dispose()\n"
    )
    try:
        for i in range(5):
            ours.store_event(_planned("shared", f"ours-{i}"))
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        for i in range(5, 10):
            ours.store_event(_planned("shared", f"ours-{i}"))
        logs = ours.get_logs_for_run("shared")
        partitions = {e.get_dagster_event().event_specific_data.partition for e in logs}
        assert len(logs) == 15
        assert partitions == {f"ours-{i}" for i in range(10)} | {f"theirs-{i}" for i in range(5)}
        stock = SqliteEventLogStorage(str(tmp_path / EVENT_LOG_DIR))
        try:
            assert len(stock.get_logs_for_run("shared")) == 15
        finally:
            stock.dispose()
    finally:
        ours.dispose()


def test_a_forked_child_opens_its_own_connections(tmp_path: Path) -> None:
    storage = ContimgSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_planned("forked", "parent-0"))
        pid = os.fork()
        if pid == 0:  # the child: the parent's idle connections are not handed out here
            status = 1
            try:
                inherited = sum(e.pool.checkedin() for e in storage._engines.values())
                storage.store_event(_planned("forked", "child"))
                status = 0 if inherited == 0 else 3
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        storage.store_event(_planned("forked", "parent-1"))
        assert len(storage.get_logs_for_run("forked")) == 3
    finally:
        storage.dispose()


def test_wipe_closes_the_files_it_deletes(tmp_path: Path) -> None:
    storage = ContimgSqliteEventLogStorage(str(tmp_path))
    try:
        storage.store_event(_planned("wiped", "a"))
        storage.wipe()
        # the run's file is deleted and not held; the index (kept, emptied) may be
        assert "wiped" not in _open_shards(tmp_path / EVENT_LOG_DIR)
        storage.store_event(_planned("wiped", "b"))  # a new file, written and read back
        assert len(storage.get_logs_for_run("wiped")) == 1
    finally:
        storage.dispose()


def test_the_asset_index_records_every_materialization(home: Path) -> None:
    """The asset_keys columns are probed once per storage (not per event): later
    materializations still reach the index, and the stock storage sees the latest."""
    with dg.DagsterInstance.get() as instance:
        _materialize(instance, "a")
        second = _materialize(instance, "b")
        (record,) = instance.get_asset_records([dg.AssetKey("tiny")])
        assert record.asset_entry.last_materialization_record.run_id == second
    stock = SqliteEventLogStorage(str(home / EVENT_LOG_DIR))
    try:
        (record,) = stock.get_asset_records([dg.AssetKey("tiny")])
        assert record.asset_entry.last_materialization_record.run_id == second
        assert stock.get_materialized_partitions(dg.AssetKey("tiny")) == {"a", "b"}
    finally:
        stock.dispose()
