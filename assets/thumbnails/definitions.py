"""`image_thumbnails`: a PNG preview of every image of the day, shown in the Dagster UI."""

import base64

import dagster as dg

from assets.catalogue.definitions import fits_metadata
from assets.partitions import DAILY_PRODUCT_POLICY, partition_dates
from assets.runtime import step_process_metadata
from assets.thumbnails.day import sheet_of, thumbnails_day
from resources.database import Databases


class ThumbnailConfig(dg.Config):
    size: int = 256  # pixels on the long side
    sample_size: int = 12  # thumbnails shown on the contact sheet
    max_workers: int = 2


@dg.asset(
    deps=[fits_metadata],
    **DAILY_PRODUCT_POLICY,
    kinds={"png"},
    description="PNG preview per image (block-averaged, ZScale limits, asinh stretch) under "
    "`CONTIMG_THUMBNAIL_DIR/<obs date>/`, with a `thumbnails` row; a contact sheet in the UI.",
)
def image_thumbnails(
    context: dg.AssetExecutionContext,
    config: ThumbnailConfig,
    database: dg.ResourceParam[Databases],
) -> dg.MaterializeResult:
    reports = []
    for day in partition_dates(context):
        report = thumbnails_day(
            database,
            day,
            size=config.size,
            max_workers=config.max_workers,
            sample_size=config.sample_size,
        )
        for path, reason in report.skipped:
            context.log.warning(f"thumbnail skipped for {path}: {reason}")
        reports.append(report)
    sample = [item for r in reports for item in r.sample][: config.sample_size]
    first = reports[0]
    first.sample = sample
    sheet = sheet_of(first)
    encoded = base64.b64encode(sheet).decode("ascii")
    folders = sorted({str(r.folder) for r in reports if r.folder})
    return dg.MaterializeResult(
        metadata={
            "contact_sheet": dg.MetadataValue.md(
                f"![contact sheet](data:image/png;base64,{encoded})"
            ),
            "thumbnails_rendered": sum(r.rendered for r in reports),
            "files_written": sum(r.written for r in reports),
            "unchanged": sum(r.unchanged for r in reports),
            "skipped": sum(len(r.skipped) for r in reports),
            "skipped_reasons": dg.MetadataValue.json(
                {p: why for r in reports for p, why in r.skipped}
            ),
            "output_folder": dg.MetadataValue.path(
                folders[0]
                if len(folders) == 1
                else str(first.folder.parent if first.folder else "")
            ),
            "contact_sheet_bytes": len(sheet),
            **step_process_metadata(),
        }
    )
