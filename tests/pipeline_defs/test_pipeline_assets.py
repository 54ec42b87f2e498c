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
from dagster._core.event_api import PartitionKeyFilter
from dagster._serdes import serialize_value
from PIL import Image as PILImage
from sqlalchemy import select

from assets.qa.definitions import BEAM_CHECK, COVERAGE_CHECK, FAIL_SHARE_CHECK
from assets.sources.definitions import EXTRACTED_CHECK, FORCED_CHECK, VARIABLE_SHARE_CHECK
from pipeline_defs.definitions import build_definitions
from pipeline_defs.monitoring.exporter import DagsterCatalog, read_dagster_facts
from resources.database import Databases
from resources.repositories.products import DAILY, daily_stats, grade_counts
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    image_paths,
    queue_rows,
    write_samples,
)

defs = build_definitions()

DAY1, DAY2, DAY3 = (SAMPLE_START + dt.timedelta(days=i) for i in range(3))
IMAGE_KEYS = {"fits_metadata", "image_thumbnails", "image_qa", "pipeline_stats"}
SOURCE_KEYS = {"image_sources", "source_associations", "forced_photometry", "source_variability"}
ASSET_KEYS = IMAGE_KEYS | SOURCE_KEYS
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


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
    (mat,) = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(asset)
    ]
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
    # the files that failed before a date could be read are on the day's page too
    undated = {r.data["file"]: r.data["error"] for r in meta["failed_before_a_date"].records}
    assert undated == {
        Path(path).name: row.error_class
        for path, row in queue_rows(dbs).items()
        if row.state == "failed" and row.obs_date is None
    }
    assert len(undated) == 3  # not FITS, an unreadable header, no DATE-OBS

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
    assert record.data["images"] == len(expected.catalogued(DAY1))
    assert record.data["failed_parses"] == n_failed_here
    _png_of_markdown(stats["rms_plot"])
    assert Path(stats["rms_plot_file"]).is_file()
    with dbs.connect("products") as conn:
        row = conn.execute(select(DAILY).where(DAILY.c.obs_date == DAY1)).mappings().one()
    assert row["n_images"] == len(expected.catalogued(DAY1))
    assert row["n_good"] + row["n_warn"] + row["n_fail"] == row["n_images"]

    checks = _checks(result)
    assert set(checks) == {
        FAIL_SHARE_CHECK, COVERAGE_CHECK, BEAM_CHECK, EXTRACTED_CHECK, FORCED_CHECK,
        VARIABLE_SHARE_CHECK,
    }  # fmt: skip
    # sources: every graded image extracted but the one without a beam, which is listed
    assert checks[EXTRACTED_CHECK].passed
    assert checks[EXTRACTED_CHECK].metadata["not_extractable"].value == 1
    assert _metadata(result, "image_sources")["measurements"] > 0
    assert _metadata(result, "source_associations")["new_sources"] > 0
    _png_of_markdown(_metadata(result, "source_variability")["eta_v"])
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
    assert {r.partition for r in records} == {DAY1.isoformat()}  # no record without a day

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
            "image_products": {
                "config": {
                    "qa": {"fail_dynamic_range": 1e9, "warn_dynamic_range": 1e9, "force": True}
                }
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
    assert result.get_failed_step_keys() == {"image_products"}
    (failure,) = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("none of the 6 files of 2025-10-01 could be parsed")
    assert "first error: " in description
    assert _materialized(result) == Counter()
    assert image_paths(dbs) == []


def _range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": first.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }


def _stored_metadata(instance: dg.DagsterInstance, asset: str, day: dt.date) -> dict:
    """The metadata of the newest materialization of one partition, as the UI reads it."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day.isoformat()]),
        limit=1,
    ).records
    assert records, (asset, day)
    materialization = records[0].asset_materialization
    assert materialization is not None and materialization.partition == day.isoformat()
    return {k: v.value for k, v in materialization.metadata.items()}


def _grades_of_day(dbs: Databases, day: dt.date) -> dict[str, int]:
    with dbs.connect("products") as conn:
        counts = grade_counts(conn, day, day)
    return {g: counts[g] for g in ("good", "warn", "fail")}


def test_partition_range_in_one_run(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    """A single-run backfill over three days: each day's materializations show that day only."""
    expected = Expected(write_samples(data_dir / "incoming"))
    result = run_job(instance, tags=_range_tags(DAY1, DAY3))
    assert result.success
    assert len(instance.get_run_records()) == 1
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued())
    partitions = {
        (e.asset_key.to_user_string(), e.partition)
        for e in result.get_asset_materialization_events()
        if e.asset_key is not None
    }
    assert partitions == {(a, d.isoformat()) for a in ASSET_KEYS for d in (DAY1, DAY2, DAY3)}
    with dbs.connect("products") as conn:
        daily = {r.obs_date: r for r in daily_stats(conn)}
    assert set(daily) == {DAY1, DAY2, DAY3}

    sheets, plots, failures = set(), set(), {}
    for day in (DAY1, DAY2, DAY3):
        catalogued = len(image_paths(dbs, day))
        ingest = _stored_metadata(instance, "fits_metadata", day)
        assert ingest["images_catalogued"] == catalogued == len(expected.catalogued(day))
        assert ingest["dagster/partition_row_count"] == catalogued
        # the whole table when the day was written: days are ingested in order
        assert ingest["dagster/row_count"] == sum(
            len(expected.catalogued(d)) for d in (DAY1, DAY2, DAY3) if d <= day
        )
        assert ingest["run_partitions"] == f"{DAY1}...{DAY3}"
        names = {r.data["file"] for r in ingest["failures"].records}
        assert ingest["failed_files"] == len(names)
        assert names <= {Path(p).name for p in expected.failed(day)}
        failures[day] = names

        qa = _stored_metadata(instance, "image_qa", day)
        assert qa["images"] == catalogued
        assert qa["grades"] == _grades_of_day(dbs, day)
        assert {r.data["image"] for r in qa["images_by_grade"].records} == {
            Path(p).name for p in image_paths(dbs, day)
        }

        thumbs = _stored_metadata(instance, "image_thumbnails", day)
        assert Path(thumbs["output_folder"]).name == day.isoformat()
        sheets.add(thumbs["contact_sheet"])

        stats = _metadata_of_stats(instance, day)
        (record,) = stats["daily_stats"].records
        row = daily[day]
        assert record.data["images"] == row.n_images == catalogued
        assert (record.data["good"], record.data["warn"], record.data["fail"]) == (
            row.n_good,
            row.n_warn,
            row.n_fail,
        )
        assert record.data["failed_parses"] == row.n_failed_parses
        strips = {
            r.data["dec_strip"]: r.data["images"] for r in stats["images_per_dec_strip"].records
        }
        assert strips == row.images_per_dec_strip
        assert Path(stats["rms_plot_file"]).parent.name == day.isoformat()
        plots.add(stats["rms_plot"])
    # the broken files are all dated day 1: only day 1 lists them
    assert failures[DAY1] and not failures[DAY2] and not failures[DAY3]
    assert len(sheets) == 3 and len(plots) == 3  # one contact sheet and one plot per day
    # the days really differ (the declination strip cycles per day): equal metadata would show
    assert len({tuple(daily[d].images_per_dec_strip.items()) for d in daily}) == 3


def _metadata_of_stats(instance: dg.DagsterInstance, day: dt.date) -> dict:
    return _stored_metadata(instance, "pipeline_stats", day)


def _check_record(
    instance: dg.DagsterInstance, check: str, day: dt.date
) -> tuple[str, bool | None]:
    """(status, passed) of the newest record of one check for one day."""
    key = dg.AssetCheckKey(dg.AssetKey("image_qa"), check)
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, partition_filter=PartitionKeyFilter(key=day.isoformat())
    )
    assert records, (check, day)
    record = records[0]
    evaluation = record.evaluation
    return record.status.value, None if evaluation is None else evaluation.passed


def test_checks_are_recorded_per_day(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    """Day 1 has an image without beam, day 2 is clean: day 2 passing does not hide day 1."""
    write_samples(data_dir / "incoming", days=2)
    first = run_job(instance, tags=_range_tags(DAY1, DAY2))
    assert first.success
    evaluations = [e for e in first.get_asset_check_evaluations() if e.check_name == BEAM_CHECK]
    assert {(e.partition, e.passed) for e in evaluations} == {
        (DAY1.isoformat(), False),
        (DAY2.isoformat(), True),
    }
    assert _check_record(instance, BEAM_CHECK, DAY1) == ("FAILED", False)
    assert _check_record(instance, BEAM_CHECK, DAY2) == ("SUCCEEDED", True)

    # day 2 again (passes again): day 1's failure is still what day 1 shows
    again = run_job(instance, partition_key=DAY2.isoformat())
    assert again.success
    assert _check_record(instance, BEAM_CHECK, DAY1) == ("FAILED", False)
    assert _check_record(instance, BEAM_CHECK, DAY2) == ("SUCCEEDED", True)
    for check in (FAIL_SHARE_CHECK, COVERAGE_CHECK):
        for day in (DAY1, DAY2):
            assert _check_record(instance, check, day) == ("SUCCEEDED", True)

    # and the exporter reports both days, each with its own label
    facts = read_dagster_facts(instance, DagsterCatalog.from_definitions(defs))
    beam = {p: ok for a, c, p, ok in facts.checks if a == "image_qa" and c == BEAM_CHECK}
    assert beam == {DAY1.isoformat(): False, DAY2.isoformat(): True}


def test_blocking_check_of_one_day_stops_the_range(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    """A failed blocking check on any day of a range run keeps pipeline_stats from running."""
    write_samples(data_dir / "incoming", days=2, broken=False)
    strict = {"ops": {"image_products": {"config": {"qa": {
        "max_fail_fraction": 0.0, "fail_dynamic_range": 1e9, "warn_dynamic_range": 1e9,
        "force": True}}}}}  # fmt: skip
    result = run_job(instance, tags=_range_tags(DAY1, DAY2), run_config=strict)
    assert not result.success
    assert "pipeline_stats" not in _materialized(result)
    assert _check_record(instance, FAIL_SHARE_CHECK, DAY1) == ("FAILED", False)
    assert _check_record(instance, FAIL_SHARE_CHECK, DAY2) == ("FAILED", False)


def test_image_qa_lists_images_worst_first_with_reasons(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    expected = Expected(write_samples(data_dir / "incoming", days=1))
    result = run_job(instance, partition_key=DAY1.isoformat())
    assert result.success
    qa = _metadata(result, "image_qa")
    rows = [r.data for r in qa["images_by_grade"].records]
    rank = {"fail": 0, "warn": 1, "ungraded": 2, "good": 3}
    assert [rank[r["grade"]] for r in rows] == sorted(rank[r["grade"]] for r in rows)
    assert {c.name for c in qa["images_by_grade"].schema.columns} == {
        "image", "grade", "rms_mjy", "peak_jy", "reasons"
    }  # fmt: skip
    nan_beam = next(r for r in rows if r["image"] == expected.by_kind("nan_beam").path.name)
    assert nan_beam["grade"] == "warn" and "beam" in nan_beam["reasons"]
    assert all(r["reasons"] for r in rows if r["grade"] != "good")
    sheet = _png_of_markdown(qa["contact_sheet"])
    assert sheet.size[0] > 0
    full = PILImage.open(qa["contact_sheet_file"])
    assert full.size[0] > sheet.size[0]  # the file is the full sheet, the preview is smaller


#: Bytes of metadata one materialization may store in the event log (serialized). Before
#: (issue 16): ~236 kB for image_thumbnails and ~40 kB for pipeline_stats with 12 images a day.
METADATA_BOUND = {
    "fits_metadata": 8_000,
    "image_thumbnails": 32_000,
    "image_qa": 48_000,
    "pipeline_stats": 24_000,
    "image_sources": 4_000,
    "source_associations": 4_000,
    "forced_photometry": 4_000,
    "source_variability": 48_000,  # the η–V plot and three light curves inline
}


def test_materialization_metadata_stays_small(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    write_samples(data_dir / "incoming", days=1, per_day=12, size=256)
    result = run_job(instance, partition_key=DAY1.isoformat())
    assert result.success
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        size = len(serialize_value(materialization.metadata))
        name = materialization.asset_key.to_user_string()
        print(f"{name}: {size} bytes of metadata")
        assert size < METADATA_BOUND[name], (name, size)


def test_materialize_with_explicit_resources(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    """dg.materialize with the assets and resources given directly (as a test harness would)."""
    from assets.products.definitions import image_products
    from assets.stats.definitions import pipeline_stats
    from resources.dagster_resources import Database, FITSService

    expected = Expected(write_samples(data_dir / "incoming", broken=False))
    result = dg.materialize(
        [image_products, pipeline_stats],
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


TABLES = {
    "fits_metadata": "products.images",
    "image_thumbnails": "products.thumbnails",
    "image_qa": "products.image_qa",
    "pipeline_stats": "products.daily_stats",
}


def test_assets_declare_owner_domain_table_schema_and_freshness() -> None:
    graph = defs.resolve_asset_graph()
    for name, table in TABLES.items():
        node = graph.get(dg.AssetKey(name))
        assert node.owners == ["team:contimg"], name
        assert node.tags.get("domain"), name
        assert node.metadata["dagster/table_name"] == table
        schema = node.metadata["dagster/column_schema"]
        columns = {c.name: c for c in schema.columns}
        assert "id" in columns or "obs_date" in columns
        assert all(c.type for c in schema.columns)
        assert table in (node.description or "")
        policy = node.freshness_policy
        assert isinstance(policy, dg.FreshnessPolicy), name
        assert policy.deadline_cron == "0 6 * * *"
    images = {c.name: c for c in graph.get(dg.AssetKey("fits_metadata")).metadata[
        "dagster/column_schema"].columns}  # fmt: skip
    assert images["path"].constraints.unique and not images["path"].constraints.nullable
    assert images["dec_deg"].constraints.nullable


def test_launchpad_config_docs_are_for_operators() -> None:
    """Every config field says what it does; no developer notes in what the Launchpad shows."""
    from assets.products.definitions import ImageProductsConfig
    from assets.qa.definitions import QAConfig
    from assets.thumbnails.definitions import ThumbnailConfig

    for config in (ImageProductsConfig, QAConfig, ThumbnailConfig):
        field = config.to_config_schema().as_field()
        assert field.description and "source of truth" not in field.description
        for name, sub in field.config_type.fields.items():
            assert sub.description, f"{config.__name__}.{name} has no description"
            assert ":class:" not in sub.description and "TODO" not in sub.description


def test_one_step_makes_three_assets_and_a_subset_runs_only_its_part(
    dbs: Databases, data_dir: Path, instance: dg.DagsterInstance
) -> None:
    """fits_metadata, image_thumbnails and image_qa come from one step (one read of each plane),
    yet selecting one of them materializes only that one."""
    from resources.repositories.products import QA, THUMBS

    expected = Expected(write_samples(data_dir / "incoming", days=1, broken=False))
    job = defs.resolve_job_def("daily_products_job")

    def run(*keys: str) -> dg.ExecuteInProcessResult:
        return job.execute_in_process(
            partition_key=DAY1.isoformat(),
            instance=instance,
            run_config=QUIET,
            asset_selection=[dg.AssetKey(k) for k in keys],
            raise_on_error=False,
        )

    def count(table) -> int:  # type: ignore[no-untyped-def]
        with dbs.connect("products") as conn:
            return len(conn.execute(select(table.c.id)).all())

    catalogued = run("fits_metadata")
    assert catalogued.success and _materialized(catalogued) == Counter(["fits_metadata"])
    assert count(QA) == count(THUMBS) == 0
    phases = _metadata(catalogued, "fits_metadata")["phases_s"]
    assert {"scan", "queue", "parse", "store"} <= set(phases)

    thumbs = run("image_thumbnails")
    assert thumbs.success and _materialized(thumbs) == Counter(["image_thumbnails"])
    n = len(expected.catalogued(DAY1))
    assert count(THUMBS) == n and count(QA) == 0
    assert _checks(thumbs) == {}  # the QA checks are not part of a thumbnails-only run

    whole = run_job(instance, partition_key=DAY1.isoformat())
    assert whole.success and _materialized(whole) == Counter(ASSET_KEYS)
    assert {e.step_key for e in whole.get_step_success_events()} == {
        "image_products",
        "pipeline_stats",
        "source_catalogue",
    }
    qa = _metadata(whole, "image_qa")
    assert qa["pass_images"] == n  # graded now: their planes were read once, for QA only
    assert _metadata(whole, "image_thumbnails")["unchanged"] == n
    assert qa["pass_images_per_s"] > 0
    assert {"pixels", "record_qa", "publish", "contact_sheet"} <= set(qa["pass_phases_s"])
    assert "duration_s" in _metadata(whole, "pipeline_stats")
