"""The embedded default's event log: Dagster's SQLite files and tables, cheaper writes.

A home written by `contimg init-home` uses `ContimgSqliteEventLogStorage`; what it stores, the
stock storage reads (and back), and its connections commit with WAL synchronous=NORMAL.
"""

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from pipeline_defs.event_log import EVENT_LOG_DIR, ContimgSqliteEventLogStorage
from pipeline_defs.instance import ensure_dagster_home


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
