"""Scrape-time gauges: real migrated databases, a hanging database, a real Dagster instance.

No `from __future__ import annotations` here: Dagster inspects the `context` annotation of the
asset check at definition time and needs the real class, not a string.
"""

import datetime as dt
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from migrations import runner
from pipeline_defs.cli.metrics import load_code_location_catalog
from pipeline_defs.monitoring.exporter import (
    CHECK_PARTITIONS_EXPORTED,
    DagsterCatalog,
    DagsterCollector,
    ExporterSettings,
    build_exporter,
    read_dagster_facts,
)
from resources.models.ingest import IngestQueueEntry
from resources.models.products import Image, ImageQA
from resources.settings import database_url
from tests.resources.metrics_support import family_names, value, wait_for
from tests.services import PG_HOST, PG_PORT, PG_USER, services_required


def _settings(tmp_path: Path, *databases: str, timeout: float = 5.0) -> ExporterSettings:
    directory = tmp_path / "prometheus"
    directory.mkdir(exist_ok=True)
    return ExporterSettings(
        multiprocess_dir=directory,
        db_timeout=timeout,
        include_dagster=False,
        databases=databases,
    )


def _image(path: str, date_obs: dt.datetime) -> Image:
    return Image(
        path=path,
        size_bytes=1000,
        mtime_ns=1,
        fingerprint="f" + path,
        hdu_index=0,
        naxis=[64, 64, 1, 1],
        bitpix=-32,
        width=64,
        height=64,
        date_obs=date_obs,
        warnings=[],
    )


def _fill_products(url: str) -> dt.datetime:
    newest = dt.datetime(2025, 10, 5, 23, 55, tzinfo=dt.UTC)
    engine = create_engine(url)
    with Session(engine) as session:
        grades = ["good", "good", "warn", "fail", None]
        for i, grade in enumerate(grades):
            image = _image(f"/data/img{i}.fits", newest - dt.timedelta(hours=i))
            session.add(image)
            session.flush()
            if grade is not None:
                session.add(ImageQA(image_id=image.id, grade=grade, reasons=[], thresholds={}))
        session.commit()
    engine.dispose()
    return newest


def _fill_ingest(url: str) -> None:
    engine = create_engine(url)
    with Session(engine) as session:
        for i, state in enumerate(["pending", "pending", "pending", "in_progress", "failed"]):
            session.add(
                IngestQueueEntry(path=f"/in/{i}.fits", size_bytes=1, mtime_ns=1, state=state)
            )
        session.commit()
    engine.dispose()


def test_database_gauges_from_migrated_sqlite(tmp_path: Path, data_dir: Path) -> None:
    for name in ("products", "ingest"):
        runner.upgrade(name)
    newest = _fill_products(database_url("products"))
    _fill_ingest(database_url("ingest"))
    sqlite3.connect(data_dir / "hdf5.sqlite3").close()  # exists, never migrated
    missing = data_dir / "cal_registry.sqlite3"

    settings = _settings(tmp_path, "products", "ingest", "hdf5", "cal_registry")
    text = build_exporter(settings).render().decode()

    # (metric, label, label value) -> value: up and at head, up but behind, absent (down).
    expected = {
        ("contimg_db_up", "database", "products"): 1.0,
        ("contimg_db_schema_at_head", "database", "products"): 1.0,
        ("contimg_db_schema_at_head", "database", "ingest"): 1.0,
        ("contimg_db_up", "database", "hdf5"): 1.0,
        ("contimg_db_schema_at_head", "database", "hdf5"): 0.0,
        ("contimg_db_up", "database", "cal_registry"): 0.0,
        ("contimg_db_schema_at_head", "database", "cal_registry"): 0.0,
        ("contimg_images", "grade", "good"): 2.0,
        ("contimg_images", "grade", "warn"): 1.0,
        ("contimg_images", "grade", "fail"): 1.0,
        ("contimg_images", "grade", "ungraded"): 1.0,
        ("contimg_ingest_queue_depth", "state", "pending"): 3.0,
        ("contimg_ingest_queue_depth", "state", "in_progress"): 1.0,
        ("contimg_ingest_queue_depth", "state", "completed"): 0.0,
        ("contimg_ingest_queue_depth", "state", "failed"): 1.0,
    }
    observed = {key: value(text, key[0], **{key[1]: key[2]}) for key in expected}
    assert observed == expected
    assert not missing.exists(), "a scrape must not create database files"
    assert value(text, "contimg_newest_observation_timestamp_seconds") == newest.timestamp()
    latency = value(text, "contimg_db_probe_latency_seconds", database="products")
    assert latency is not None and latency > 0
    # Each family exactly once, even though other processes also write contimg_db_up.
    names = family_names(text)
    assert len(names) == len(set(names))


def test_unmigrated_database_is_not_at_head_and_has_no_table_gauges(
    tmp_path: Path, data_dir: Path
) -> None:
    sqlite3.connect(data_dir / "products.sqlite3").close()
    text = build_exporter(_settings(tmp_path, "products")).render().decode()
    assert value(text, "contimg_db_up", database="products") == 1.0
    assert value(text, "contimg_db_schema_at_head", database="products") == 0.0
    assert value(text, "contimg_images", grade="good") is None


@pytest.fixture
def locked_ingest(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[psycopg.Connection]:
    """A migrated PostgreSQL ingest database whose queue table another session holds locked."""
    runner.upgrade("ingest", pg_url)
    monkeypatch.setenv("CONTIMG_DB_INGEST_URL", pg_url)
    database = pg_url.rsplit("/", 1)[1]
    conn = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database)
    conn.execute("LOCK TABLE ingest_queue IN ACCESS EXCLUSIVE MODE")  # held until rollback
    try:
        yield conn
    finally:
        conn.close()


@pytest.mark.postgres
def test_hanging_database_reports_down_without_hanging_the_scrape(
    tmp_path: Path, locked_ingest: psycopg.Connection
) -> None:
    exporter = build_exporter(_settings(tmp_path, "ingest", timeout=1.0))
    started = time.monotonic()
    text = exporter.render().decode()
    elapsed = time.monotonic() - started
    assert value(text, "contimg_db_up", database="ingest") == 0.0
    assert value(text, "contimg_ingest_queue_depth", state="pending") is None
    # The queue query blocks for as long as the lock is held (forever, here): the scrape
    # returned only because the probe has a deadline.
    assert elapsed < 30, f"scrape took {elapsed:.1f} s"

    locked_ingest.rollback()  # release the lock: the database answers again

    def scrape_when_up() -> str | None:
        text = exporter.render().decode()
        return text if value(text, "contimg_db_up", database="ingest") == 1.0 else None

    recovered = wait_for("ingest to be reported up", scrape_when_up)
    assert value(recovered, "contimg_ingest_queue_depth", state="pending") == 0.0
    assert value(recovered, "contimg_db_schema_at_head", database="ingest") == 1.0


# --- Dagster instance -------------------------------------------------------------------------

DAILY = dg.DailyPartitionsDefinition(start_date="2025-10-01", end_date="2025-10-06")


@dg.asset(partitions_def=DAILY)
def sample_images() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": 1})


@dg.asset_check(asset=sample_images, partitions_def=DAILY)
def sample_images_complete(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=context.partition_key != "2025-10-02")


SAMPLE_JOB = dg.define_asset_job("sample_images_job", selection=[sample_images])
SAMPLE_DEFS = dg.Definitions(
    assets=[sample_images], asset_checks=[sample_images_complete], jobs=[SAMPLE_JOB]
)


def test_dagster_gauges_from_a_real_instance(tmp_path: Path, data_dir: Path) -> None:
    with dg.instance_for_test(temp_dir=str(data_dir / "dagster_home")) as instance:
        job = SAMPLE_DEFS.resolve_job_def("sample_images_job")
        # 10-02's check fails; running 10-03 (passes) and re-running 10-01 later must not hide
        # it: every recent day has its own series, labelled with the day.
        for partition in ("2025-10-01", "2025-10-02", "2025-10-03", "2025-10-01"):
            assert job.execute_in_process(instance=instance, partition_key=partition).success
        finished = time.time()
        collector = DagsterCollector(
            30.0,
            instance_factory=lambda: instance,
            catalog_factory=lambda: DagsterCatalog.from_definitions(SAMPLE_DEFS),
            clock=lambda: finished + 60.0,
        )
        settings = _settings(tmp_path)
        text = build_exporter(settings, dagster_collector=collector).render().decode()

    assert value(text, "contimg_dagster_instance_up") == 1.0
    assert (
        value(text, "contimg_dagster_runs", dagster_job="sample_images_job", status="SUCCESS")
        == 4.0
    )
    assert (
        value(text, "contimg_dagster_runs", dagster_job="sample_images_job", status="FAILURE")
        == 0.0
    )
    assert value(text, "contimg_dagster_queued_runs") == 0.0
    last = value(
        text, "contimg_dagster_asset_last_materialization_timestamp_seconds", asset="sample_images"
    )
    assert last is not None and finished - 300 < last <= finished
    age = value(text, "contimg_dagster_asset_materialization_age_seconds", asset="sample_images")
    assert age is not None and age == pytest.approx(finished + 60.0 - last)
    check = {"asset": "sample_images", "check": "sample_images_complete"}
    assert value(text, "contimg_dagster_asset_check_passed", partition="2025-10-02", **check) == 0
    assert value(text, "contimg_dagster_asset_check_passed", partition="2025-10-01", **check) == 1
    assert value(text, "contimg_dagster_asset_check_passed", partition="2025-10-03", **check) == 1
    assert value(text, "contimg_dagster_asset_check_passed", partition="", **check) is None
    duration = value(text, "contimg_exporter_collect_duration_seconds", collector="dagster")
    assert duration is not None and duration > 0


def test_unreadable_dagster_instance_reports_down(tmp_path: Path) -> None:
    def broken() -> dg.DagsterInstance:
        raise dg.DagsterInvariantViolationError("DAGSTER_HOME points nowhere")

    collector = DagsterCollector(
        5.0,
        instance_factory=broken,
        catalog_factory=lambda: DagsterCatalog.from_definitions(SAMPLE_DEFS),
    )
    text = build_exporter(_settings(tmp_path), dagster_collector=collector).render().decode()
    assert value(text, "contimg_dagster_instance_up") == 0.0
    assert "contimg_dagster_runs{" not in text


def test_code_location_catalog_loads_whatever_is_defined() -> None:
    catalog = load_code_location_catalog()
    # Generic: no names are assumed; the implicit asset job exists as soon as there are assets.
    assert all(isinstance(name, str) for name in catalog.jobs)
    assert set(catalog.partition_order) <= set(catalog.assets)


def test_promtool_accepts_the_full_exposition(tmp_path: Path, data_dir: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool not found (Debian package prometheus; .ci/run installs it)"
        if services_required():
            pytest.fail(f"{reason} and CONTIMG_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    for name in ("products", "ingest"):
        runner.upgrade(name)
    _fill_products(database_url("products"))
    _fill_ingest(database_url("ingest"))
    with dg.instance_for_test(temp_dir=str(data_dir / "dagster_home")) as instance:
        job = SAMPLE_DEFS.resolve_job_def("sample_images_job")
        assert job.execute_in_process(instance=instance, partition_key="2025-10-03").success
        collector = DagsterCollector(
            30.0,
            instance_factory=lambda: instance,
            catalog_factory=lambda: DagsterCatalog.from_definitions(SAMPLE_DEFS),
        )
        settings = _settings(tmp_path, "products", "ingest", "hdf5")
        text = build_exporter(settings, dagster_collector=collector).render().decode()
    assert (
        value(
            text,
            "contimg_dagster_asset_check_passed",
            asset="sample_images",
            check="sample_images_complete",
            partition="2025-10-03",
        )
        == 1.0
    )
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_series_are_bounded_to_the_newest_partitions(tmp_path: Path, data_dir: Path) -> None:
    """One series per evaluated day, but only the newest CHECK_PARTITIONS_EXPORTED days."""
    wide = dg.DailyPartitionsDefinition(start_date="2025-10-01", end_date="2025-10-12")

    @dg.asset(partitions_def=wide, name="wide_images")
    def wide_images() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"n": 1})

    @dg.asset_check(asset=wide_images, partitions_def=wide)
    def wide_complete(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=context.partition_key != "2025-10-09")

    job = dg.define_asset_job("wide_job", selection=[wide_images])
    defs = dg.Definitions(assets=[wide_images], asset_checks=[wide_complete], jobs=[job])
    days = [f"2025-10-{d:02d}" for d in range(1, 12)]
    with dg.instance_for_test(temp_dir=str(data_dir / "dagster_home")) as instance:
        for day in days:
            assert (
                defs.resolve_job_def("wide_job")
                .execute_in_process(instance=instance, partition_key=day)
                .success
            )
        facts = read_dagster_facts(instance, DagsterCatalog.from_definitions(defs))
    exported = {partition: passed for _a, _c, partition, passed in facts.checks}
    assert sorted(exported) == days[-CHECK_PARTITIONS_EXPORTED:]
    assert exported["2025-10-09"] is False
    assert all(passed for day, passed in exported.items() if day != "2025-10-09")
