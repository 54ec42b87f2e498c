"""`image_products`: one op makes a day's catalogue rows, QA grades and thumbnails.

`fits_metadata`, `image_thumbnails` and `image_qa` stay three assets in the graph and the UI,
each with its spec, table, metadata and checks in its own domain (assets/catalogue,
assets/thumbnails, assets/qa), but one step materializes them: a `multi_asset` with
`can_subset=True`, so selecting one of them runs only its part. A day's files are catalogued,
then each image's plane is read once for both its QA and its thumbnail
(`assets.products.day.products_day`), and the day's rows, reports and publications are written
in a few batched transactions. Before, each asset was a step of its own that read every plane
again (docs/performance.md, "The user's path").
"""

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.catalogue.definitions import FITS_METADATA, catalogue_days
from assets.partitions import (
    DAILY_OP_POLICY,
    add_day_metadata,
    day_check_evaluations,
    partition_dates,
)
from assets.products.day import products_day
from assets.qa.definitions import (
    CHECK_SPECS,
    IMAGE_QA,
    QAConfig,
    check_evaluations,
    fail_limit,
    qa_day_metadata,
    thresholds_of,
)
from assets.qa.summary import DayChecks, day_checks
from assets.runtime import step_process_metadata
from assets.sources.definitions import (
    EXTRACTED_CHECK,
    IMAGE_SOURCES,
    IMAGE_SOURCES_CHECKS,
    ExtractionVerdict,
    SourcesConfig,
    sources_day_metadata,
)
from assets.tables import row_count_metadata
from assets.thumbnails.day import day_sheet
from assets.thumbnails.definitions import (
    IMAGE_THUMBNAILS,
    ThumbnailConfig,
    sheet_metadata,
    thumbnails_day_metadata,
)
from resources.database import Databases
from resources.fits.pixels import pixel_threads, warm_pool
from resources.fits_service import FitsMetadataService
from resources.repositories.products import (
    MEASUREMENTS,
    QA,
    THUMBS,
    extraction_rows_of_day,
    qa_details_of_day,
)


class ImageProductsConfig(dg.Config):
    """Run config of the step that catalogues, grades and previews a day's images."""

    qa: QAConfig = Field(
        default_factory=QAConfig, description="QA thresholds and re-grading (docs/qa.md)."
    )
    thumbnails: ThumbnailConfig = Field(
        default_factory=ThumbnailConfig,
        description="Thumbnail size and the day's contact sheet (docs/thumbnails.md).",
    )
    sources: SourcesConfig = Field(
        default_factory=SourcesConfig,
        description="Blind source extraction (image_sources; docs/sources.md).",
    )
    pixel_threads: int = Field(
        default=0,
        description="Threads reading the image planes for QA, thumbnails and sources; 0: the "
        "CONTIMG_PIXEL_THREADS setting (one per CPU by default).",
    )


@dg.multi_asset(
    name="image_products",
    specs=[FITS_METADATA, IMAGE_THUMBNAILS, IMAGE_QA, IMAGE_SOURCES],
    check_specs=[*CHECK_SPECS, *IMAGE_SOURCES_CHECKS],
    can_subset=True,
    **DAILY_OP_POLICY,
    description="Catalogue (fits_metadata), thumbnails (image_thumbnails), QA (image_qa) and "
    "source extraction (image_sources) of the run's observation days in one step: each image "
    "plane is read once for all three.",
)
def image_products(
    context: dg.AssetExecutionContext,
    config: ImageProductsConfig,
    database: dg.ResourceParam[Databases],
    fits: dg.ResourceParam[FitsMetadataService],
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    selected = context.selected_asset_keys
    if IMAGE_SOURCES.key in selected:  # its pass runs on worker processes: start them now
        warm_pool(config.pixel_threads or None, [products_day.__module__])
    if FITS_METADATA.key in selected:
        yield catalogue_days(context, database, fits)
    qa, thumbnails = IMAGE_QA.key in selected, IMAGE_THUMBNAILS.key in selected
    sources = IMAGE_SOURCES.key in selected
    if not (qa or thumbnails or sources):
        return
    thresholds = thresholds_of(config.qa)
    limit = fail_limit(config.qa)
    checks: dict[dt.date, DayChecks] = {}
    extracted: dict[dt.date, dict[str, ExtractionVerdict]] = {}
    dates = partition_dates(context)
    planes, seconds = 0, 0.0
    for day in dates:
        done = products_day(
            database,
            day,
            qa=qa,
            thumbnails=thumbnails,
            thresholds=thresholds,
            size=config.thumbnails.size,
            force=config.qa.force,
            threads=config.pixel_threads or None,
            sources=sources,
            extraction=config.sources.extraction(),
            force_sources=config.sources.force,
        )
        started = time.perf_counter()
        # The day's images with their grades, read once: the sheet and the checks use them.
        with database.connect("products") as conn:
            details = qa_details_of_day(conn, day)
        # One contact sheet per day, after QA when it ran: worst grade first.
        sheet = (
            day_sheet(
                database,
                day,
                name="qa-sheet" if qa else "thumbnails-sheet",
                max_tiles=config.thumbnails.sample_size,
                size=config.thumbnails.size,
                details=details,
            )
            if qa or thumbnails
            else None
        )
        for path, why in sheet.missing if sheet is not None else ():
            context.log.warning(f"no contact sheet tile for {Path(path).name}: {why}")
        done.phases["contact_sheet"] = time.perf_counter() - started
        timing = done.metadata()
        if done.thumbnails is not None:
            for path, why in done.thumbnails.skipped:
                context.log.warning(f"thumbnail skipped for {path}: {why}")
            add_day_metadata(
                context,
                day,
                {
                    **thumbnails_day_metadata(done.thumbnails, sheet),
                    **timing,
                    **row_count_metadata(database, THUMBS, day),
                },
                asset_key=IMAGE_THUMBNAILS.key,
            )
        if done.qa is not None:
            for path, why in done.qa.unreadable:
                context.log.warning(f"{path}: {why}")
            checks[day] = day_checks(details, limit)
            add_day_metadata(
                context,
                day,
                {
                    **qa_day_metadata(done.qa, details, checks[day]),
                    **sheet_metadata(sheet),
                    **timing,
                    **row_count_metadata(database, QA, day),
                },
                asset_key=IMAGE_QA.key,
            )
        if done.sources is not None:
            for path, why in done.sources.errors[:20]:
                context.log.warning(f"no sources extracted from {Path(path).name}: {why}")
            with database.connect("products") as conn:
                verdict = ExtractionVerdict(extraction_rows_of_day(conn, day))
            extracted[day] = {EXTRACTED_CHECK: verdict}
            add_day_metadata(
                context,
                day,
                {
                    **sources_day_metadata(done.sources),
                    **timing,
                    **row_count_metadata(database, MEASUREMENTS, day),
                },
                asset_key=IMAGE_SOURCES.key,
            )
        planes += done.planes_read
        seconds += done.seconds
    # One line per run (each log line is an event-log write); each day's split is in its metadata.
    context.log.info(
        f"{len(dates)} day(s): {planes} planes read once each on "
        f"{config.pixel_threads or pixel_threads()} threads, {seconds:.2f} s"
    )
    if thumbnails:
        yield dg.MaterializeResult(asset_key=IMAGE_THUMBNAILS.key, metadata=step_process_metadata())
    if qa:
        yield dg.MaterializeResult(
            asset_key=IMAGE_QA.key,
            metadata={
                "thresholds": dg.MetadataValue.json(thresholds.to_dict()),
                "max_fail_fraction": limit,
                **step_process_metadata(),
            },
        )
    if sources:  # after image_qa: Dagster wants a multi-asset's outputs in dependency order
        yield dg.MaterializeResult(asset_key=IMAGE_SOURCES.key, metadata=step_process_metadata())
    # After the materializations, so that each day's results point at that day's event.
    if qa:
        yield from check_evaluations(context, checks)
    if sources:
        yield from day_check_evaluations(
            context, IMAGE_SOURCES.key, IMAGE_SOURCES_CHECKS, extracted
        )
