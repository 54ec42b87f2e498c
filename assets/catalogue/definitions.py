"""`fits_metadata`: every queued FITS file of an observation day becomes an `images` row.

The asset's spec and what materializing it does; the `image_products` op
(assets/products/definitions.py) runs it together with QA and thumbnails.
"""

import datetime as dt
import time
from collections import Counter
from pathlib import Path

import dagster as dg

from assets.catalogue.ingest import FileFailure, IngestReport, ingest_day
from assets.ms.lineage import day_lineage
from assets.partitions import DAILY_SPEC_POLICY, add_day_metadata, partition_dates
from assets.runtime import step_process_metadata
from assets.tables import row_count_metadata, table_definition_metadata
from resources.database import Databases
from resources.fits_service import FitsMetadataService
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import IMAGES, count_images

#: Rows of the failures table; the run log has every failure.
FAILURE_ROWS = 100
#: Characters of a failure message in the table: it must fit a 1440 px wide UI.
MESSAGE_CHARS = 90


def short_message(failure: FileFailure) -> str:
    """First line of the error, the file's directory left out, cut to `MESSAGE_CHARS`.

    Error messages usually start with the full path, which is what clipped the table in the
    UI; the table has the file name in its own column already.
    """
    name = Path(failure.path).name
    text = failure.message.replace(failure.path, name).splitlines()[0] if failure.message else ""
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def failure_table(failures: list[FileFailure]) -> dg.TableMetadataValue:
    """Broken files as (file, error class, short message): three narrow columns."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {"file": Path(f.path).name, "error": f.error_class, "message": short_message(f)}
            )
            for f in failures[:FAILURE_ROWS]
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("file", "string", description="file name (full path in the log)"),
                dg.TableColumn("error", "string", description="error class"),
                dg.TableColumn("message", "string", description="first line of the error"),
            ]
        ),
    )


def day_metadata(report: IngestReport, catalogued: int, elapsed: float) -> dict:
    """What one observation day's materialization shows."""
    by_class = Counter(f.error_class for f in report.failures)
    return {
        "files": report.files,
        "images_upserted": report.parsed,
        "images_catalogued": catalogued,
        "failed_files": len(report.failures),
        # Vanished between discovery and processing: not a parse failure, not retried.
        "missing_files": len(report.missing),
        "failures_by_class": dict(by_class),
        "failures": failure_table(report.failures),
        "already_catalogued": report.already_done,
        "released_dead_claims": report.released,
        "duration_s": round(elapsed, 3),
        "phases_s": {name: round(v, 3) for name, v in report.phases.items()},
        "images_per_s": round(report.parsed / elapsed, 2) if elapsed > 0 else 0.0,
    }


FITS_METADATA = dg.AssetSpec(
    "fits_metadata",
    **DAILY_SPEC_POLICY,
    kinds={"fits", "sql"},
    tags={"domain": "catalogue"},
    metadata=table_definition_metadata(IMAGES),
    # The images are made from the day's measurement sets: the graph shows the chain (each
    # image's own link is `images.ms_id`, set by either asset, whichever runs last).
    deps=["measurement_sets"],
    description="One `images` row per FITS file of the observation day (UTC date of DATE-OBS), "
    "parsed and validated by the FITS service; broken files are recorded, never fatal. "
    "Writes table `products.images`, each image linked to its measurement set when indexed.",
)


def catalogue_days(
    context: dg.AssetExecutionContext,
    database: Databases,
    fits: FitsMetadataService,
) -> dg.MaterializeResult:
    """Materialize `fits_metadata` for the run's days (the `image_products` op calls this).

    Per day: ingest (claim, parse, upsert, mark) and that day's metadata; raises `dg.Failure`
    when the run has files but none of them could be parsed.
    """
    dates = partition_dates(context)
    reports: list[IngestReport] = []
    catalogued = 0
    for i, day in enumerate(dates):
        started = time.monotonic()
        # One scan of the incoming directories registers every day's files: a range run
        # refreshes the index once, not once per day.
        report = ingest_day(
            database,
            fits,
            day,
            run_id=context.run.run_id,
            scan=i == 0,
            log=context.log.warning,
            wait_for_others=True,
        )
        for failure in report.failures:
            context.log.warning(f"{failure.path}: {failure.error_class}: {failure.message}")
        for path in report.missing:
            context.log.warning(f"{path}: vanished before it could be read (queue: missing)")
        reports.append(report)
        with database.connect("products") as conn:
            of_day = count_images(conn, day)
        catalogued += of_day
        linked, _, lineage = day_lineage(database, day)
        add_day_metadata(
            context,
            day,
            {
                **day_metadata(report, of_day, time.monotonic() - started),
                **row_count_metadata(database, IMAGES, day),
                "linked_to_ms": linked,
                "lineage": dg.MetadataValue.md(lineage),
            },
            asset_key=FITS_METADATA.key,
        )
    merged = IngestReport.merge(reports)
    # One line per run, not per day: each log line is an event-log write, and a year's range
    # run would write hundreds (each day's numbers are in its materialization).
    context.log.info(f"{_label(dates)}: {merged.summary()}")
    # Fail only when the run has files but no image at all. A re-run after success retries
    # just the day's broken files; that they fail again must not fail the partition. Files
    # that vanished are no verdict on the data and do not count.
    if merged.failures and merged.parsed == 0 and catalogued == 0:
        raise dg.Failure(
            description=f"none of the {merged.files} files of {_label(dates)} could be parsed; "
            f"first error: {merged.failures[0].error_class}: {merged.failures[0].message}",
            metadata={"failures": failure_table(merged.failures)},
        )
    # Run-wide facts only: they are the same for every day of a range run. Files that failed
    # before a date could be read belong to no day; every day's page lists them here.
    undated = [
        FileFailure(row.path, row.error_class or "unknown", row.last_error or "")
        for row in ingest_queue.failed_without_date(database.engine("ingest"), limit=FAILURE_ROWS)
    ]
    return dg.MaterializeResult(
        asset_key=FITS_METADATA.key,
        metadata={
            "run_partitions": _label(dates),
            "scan": merged.scan_summary,
            "failed_before_a_date": failure_table(undated),
            **step_process_metadata(),
        },
    )


def _label(dates: list[dt.date]) -> str:
    if len(dates) == 1:
        return dates[0].isoformat()
    return f"{dates[0].isoformat()}...{dates[-1].isoformat()}"
