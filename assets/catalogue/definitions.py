"""`fits_metadata`: every queued FITS file of an observation day becomes an `images` row."""

import datetime as dt
import time
from collections import Counter

import dagster as dg

from assets.catalogue.ingest import IngestReport, ingest_day
from assets.partitions import DAILY_PRODUCT_POLICY, partition_dates
from assets.runtime import step_process_metadata
from resources.database import Databases
from resources.fits_service import FitsMetadataService
from resources.repositories.products import count_images


def _failure_table(report: IngestReport) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"path": f.path, "error": f.error_class, "message": f.message[:300]})
            for f in report.failures[:200]
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("path", "string"),
                dg.TableColumn("error", "string"),
                dg.TableColumn("message", "string"),
            ]
        ),
    )


@dg.asset(
    **DAILY_PRODUCT_POLICY,
    kinds={"fits", "sql"},
    description="One `images` row per FITS file of the observation day (UTC date of DATE-OBS), "
    "parsed and validated by the FITS service; broken files are recorded, never fatal.",
)
def fits_metadata(
    context: dg.AssetExecutionContext,
    database: dg.ResourceParam[Databases],
    fits: dg.ResourceParam[FitsMetadataService],
) -> dg.MaterializeResult:
    started = time.monotonic()
    dates = partition_dates(context)
    reports: list[IngestReport] = []
    for i, day in enumerate(dates):
        # One scan of the incoming directories registers every day's files: a range run
        # refreshes the index once, not once per day.
        report = ingest_day(database, fits, day, run_id=context.run.run_id, scan=i == 0)
        context.log.info(f"{day}: {report.summary()}")
        for failure in report.failures:
            context.log.warning(f"{failure.path}: {failure.error_class}: {failure.message}")
        reports.append(report)
    merged = IngestReport.merge(reports)
    elapsed = time.monotonic() - started
    with database.connect("products") as conn:
        catalogued = sum(count_images(conn, day) for day in dates)
    # Fail only when the partition has files but no image at all. A re-run after success
    # retries just the day's broken files; that they fail again must not fail the partition.
    if merged.files > 0 and merged.parsed == 0 and catalogued == 0:
        raise dg.Failure(
            description=f"none of the {merged.files} files of {_label(dates)} could be parsed; "
            f"first error: {merged.failures[0].error_class}: {merged.failures[0].message}",
            metadata={"failures": _failure_table(merged)},
        )
    by_class = Counter(f.error_class for f in merged.failures)
    return dg.MaterializeResult(
        metadata={
            "partitions": _label(dates),
            "files": merged.files,
            "images_upserted": merged.parsed,
            "images_catalogued": catalogued,
            "failed_files": len(merged.failures),
            "failures_by_class": dict(by_class),
            "failures": _failure_table(merged),
            "already_catalogued": merged.already_done,
            "released_dead_claims": merged.released,
            "scan": merged.scan_summary,
            "duration_s": round(elapsed, 3),
            "images_per_s": round(merged.parsed / elapsed, 2) if elapsed > 0 else 0.0,
            **step_process_metadata(),
        }
    )


def _label(dates: list[dt.date]) -> str:
    if len(dates) == 1:
        return dates[0].isoformat()
    return f"{dates[0].isoformat()}...{dates[-1].isoformat()}"
