"""The four daily assets run by Dagster in process, on real databases and sample files."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import re
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from assets.qa.definitions import BEAM_CHECK, COVERAGE_CHECK, FAIL_SHARE_CHECK
from pipeline_defs.definitions import build_definitions
from resources.database import Databases
from resources.repositories.products import DAILY
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    image_paths,
    migrated_sqlite,
    write_samples,
)

defs = build_definitions()

DAY1, DAY2, DAY3 = (SAMPLE_START + dt.timedelta(days=i) for i in range(3))
ASSET_KEYS = {"fits_metadata", "image_thumbnails", "image_qa", "pipeline_stats"}
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@pytest.fixture
def dbs(data_dir: Path) -> Databases:
    return migrated_sqlite(data_dir)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def run_job(
    instance: dg.DagsterInstance,
    *,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("daily_products_job")
    return job.execute_in_process(
        partition_key=partition_key,
        tags=tags,
        instance=instance,
        run_config={**QUIET, **(run_config or {})},
        raise_on_error=False,
    )


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (mat,) = [m for m in result.asset_materializations_for_node(asset)]
    return {k: v.value for k, v in mat.metadata.items()}


def _materialized(result: dg.ExecuteInProcessResult) -> Counter:
    return Counter(
        e.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _png_of_markdown(markdown: str) -> PILImage.Image:
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:200]
    try:
        raw = base64.b64decode(match.group(1), validate=True)
    except binascii.Error as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"not base64: {exc}") from exc
    image = PILImage.open(io.BytesIO(raw))
    image.verify()
    return PILImage.open(io.BytesIO(raw))


def test_one_partition_end_to_end(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    expected = Expected(write_samples(data_dir / "incoming"))
    result = run_job(instance, partition_key=DAY1.isoformat())
    assert result.success
    assert _materialized(result) == Counter(ASSET_KEYS)
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued(DAY1))

    meta = _metadata(result, "fits_metadata")
    n_failed_here = 6  # the broken files whose header is fine fail here (the rest at the scan)
    assert meta["images_upserted"] == len(expected.catalogued(DAY1))
    assert meta["failed_files"] == n_failed_here
    assert sum(meta["failures_by_class"].values()) == n_failed_here
    assert {r.data["error"] for r in meta["failures"].records} == set(meta["failures_by_class"])

    thumbs = _metadata(result, "image_thumbnails")
    sheet = _png_of_markdown(thumbs["contact_sheet"])
    assert sheet.format == "PNG" and sheet.size[0] > 0
    assert thumbs["thumbnails_rendered"] == len(expected.catalogued(DAY1))
    assert Path(thumbs["output_folder"]).is_dir()

    qa = _metadata(result, "image_qa")
    assert qa["images"] == len(expected.catalogued(DAY1))
    assert sum(qa["grades"].values()) == qa["images"]

    stats = _metadata(result, "pipeline_stats")
    (record,) = stats["daily_stats"].records
    assert record.data["obs_date"] == DAY1.isoformat()
    assert record.data["images"] == len(expected.catalogued(DAY1))
    assert record.data["failed_parses"] == n_failed_here
    _png_of_markdown(stats["rms_plot"])
    with dbs.connect("products") as conn:
        row = conn.execute(select(DAILY).where(DAILY.c.obs_date == DAY1)).mappings().one()
    assert row["n_images"] == len(expected.catalogued(DAY1))
    assert row["n_good"] + row["n_warn"] + row["n_fail"] == row["n_images"]

    checks = _checks(result)
    assert set(checks) == {FAIL_SHARE_CHECK, COVERAGE_CHECK, BEAM_CHECK}
    assert checks[FAIL_SHARE_CHECK].passed and checks[COVERAGE_CHECK].passed
    # the NaN-beam sample is dated DAY1: the (warn-only) beam check says so, with the number
    assert not checks[BEAM_CHECK].passed
    assert checks[BEAM_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert checks[BEAM_CHECK].metadata["without_beam"].value == 1
    # the check results are recorded in the instance too
    key = dg.AssetCheckKey(dg.AssetKey("image_qa"), FAIL_SHARE_CHECK)
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
    done = [r for r in records if r.status.value != "PLANNED"]
    assert [(r.run_id, r.status.value) for r in done] == [(result.run_id, "SUCCEEDED")]

    # the same partition again: succeeds, writes nothing new
    again = run_job(instance, partition_key=DAY1.isoformat())
    assert again.success, [e.message for e in again.get_step_failure_events()]
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued(DAY1))
    assert _metadata(again, "fits_metadata")["images_upserted"] == 0
    assert _metadata(again, "fits_metadata")["images_catalogued"] == len(expected.catalogued(DAY1))
    assert _metadata(again, "fits_metadata")["failed_files"] == n_failed_here  # retried
    assert _metadata(again, "image_thumbnails")["files_written"] == 0
    assert _metadata(again, "image_qa")["graded_this_run"] == 0


def test_failing_blocking_check_stops_pipeline_stats(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    write_samples(data_dir / "incoming", broken=False)
    strict = {
        "ops": {
            "image_qa": {
                "config": {"fail_dynamic_range": 1e9, "warn_dynamic_range": 1e9, "force": True}
            }
        }
    }
    result = run_job(instance, partition_key=DAY2.isoformat(), run_config=strict)
    assert not result.success
    checks = _checks(result)
    assert not checks[FAIL_SHARE_CHECK].passed
    assert checks[FAIL_SHARE_CHECK].metadata["fail_fraction"].value == 1.0
    assert checks[COVERAGE_CHECK].passed and checks[BEAM_CHECK].passed
    materialized = _materialized(result)
    assert "pipeline_stats" not in materialized
    assert materialized["fits_metadata"] == 1
    with dbs.connect("products") as conn:
        assert conn.execute(select(DAILY).where(DAILY.c.obs_date == DAY2)).first() is None

    # with sane thresholds the day flows through again
    ok = run_job(instance, partition_key=DAY2.isoformat())
    assert ok.success and _materialized(ok)["pipeline_stats"] == 1
    assert _checks(ok)[FAIL_SHARE_CHECK].passed


def test_partition_of_only_broken_files_fails_fits_metadata(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    expected = Expected(write_samples(data_dir / "incoming", days=1, per_day=0))
    expected.by_kind("nan_beam").path.unlink()  # the one broken kind that still parses
    result = run_job(instance, partition_key=DAY1.isoformat())
    assert not result.success
    assert result.get_failed_step_keys() == {"fits_metadata"}
    (failure,) = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("none of the 6 files of 2025-10-01 could be parsed")
    assert "first error: " in description
    assert _materialized(result) == Counter()
    assert image_paths(dbs) == []


def test_partition_range_in_one_run(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    expected = Expected(write_samples(data_dir / "incoming"))
    result = run_job(
        instance,
        tags={
            "dagster/asset_partition_range_start": DAY1.isoformat(),
            "dagster/asset_partition_range_end": DAY3.isoformat(),
        },
    )
    assert result.success
    assert len(instance.get_run_records()) == 1
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued())
    partitions = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    assert partitions == {(a, d.isoformat()) for a in ASSET_KEYS for d in (DAY1, DAY2, DAY3)}
    stats = _metadata_many(result, "pipeline_stats")
    days = sorted(r.data["obs_date"] for r in stats["daily_stats"].records)
    assert days == [d.isoformat() for d in (DAY1, DAY2, DAY3)]
    with dbs.connect("products") as conn:
        assert {r.obs_date for r in conn.execute(select(DAILY.c.obs_date))} == {DAY1, DAY2, DAY3}


def _metadata_many(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """Metadata of a multi-partition materialization (one event per partition, same values)."""
    mats = result.asset_materializations_for_node(asset)
    assert mats
    return {k: v.value for k, v in mats[0].metadata.items()}


def test_materialize_with_explicit_resources(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    """dg.materialize with the assets and resources given directly (as a test harness would)."""
    from assets.catalogue.definitions import fits_metadata
    from assets.qa.definitions import image_qa
    from assets.stats.definitions import pipeline_stats
    from assets.thumbnails.definitions import image_thumbnails
    from resources.dagster_resources import Database, FITSService

    expected = Expected(write_samples(data_dir / "incoming", broken=False))
    result = dg.materialize(
        [fits_metadata, image_thumbnails, image_qa, pipeline_stats],
        partition_key=DAY3.isoformat(),
        resources={
            "database": Database(),
            "fits": FITSService(cache_path=str(data_dir / "other-cache.sqlite3")),
        },
        instance=instance,
        run_config=QUIET,
    )
    assert result.success
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued(DAY3))
    assert (data_dir / "other-cache.sqlite3").exists()
