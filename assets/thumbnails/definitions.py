"""`image_thumbnails`: a PNG preview of every image of the day, shown in the Dagster UI."""

import base64
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.catalogue.definitions import fits_metadata
from assets.partitions import DAILY_PRODUCT_POLICY, add_day_metadata, partition_dates
from assets.runtime import step_process_metadata
from assets.tables import row_count_metadata, table_definition_metadata
from assets.thumbnails.day import PREVIEW_TILES, DaySheet, day_sheet, thumbnails_day
from resources.database import Databases
from resources.repositories.products import THUMBS


class ThumbnailConfig(dg.Config):
    """How the thumbnails and the day's contact sheet are drawn."""

    size: int = Field(default=256, description="Thumbnail size in pixels on the long side.")
    sample_size: int = Field(
        default=12, description="Tiles on the day's contact sheet (worst QA grade first)."
    )
    max_workers: int = Field(default=2, description="Thumbnails rendered in parallel.")


def sheet_metadata(sheet: DaySheet) -> dict:
    """The inline preview (one click, "Show Markdown") and the path of the full contact sheet.

    Only the small palette preview goes into the event log; the full sheet is a file
    (docs/thumbnails.md, "Previews").
    """
    encoded = base64.b64encode(sheet.preview).decode("ascii")
    return {
        "contact_sheet": dg.MetadataValue.md(
            f"![contact sheet](data:image/png;base64,{encoded})\n\n"
            f"The first {min(sheet.tiles, PREVIEW_TILES)} of {sheet.tiles} tiles, worst grade "
            f"first, at 16 grey levels; full sheet: `{sheet.path}`"
        ),
        "contact_sheet_file": dg.MetadataValue.path(str(sheet.path)),
        "contact_sheet_bytes": len(sheet.png),
    }


@dg.asset(
    deps=[fits_metadata],
    **DAILY_PRODUCT_POLICY,
    kinds={"png", "sql"},
    tags={"domain": "thumbnails"},
    metadata=table_definition_metadata(THUMBS),
    description="PNG preview per image (block-averaged, ZScale limits, asinh stretch) under "
    "`CONTIMG_THUMBNAIL_DIR/<obs date>/`, recorded in table `products.thumbnails`; a contact "
    "sheet per day, worst QA grade first when QA has run.",
)
def image_thumbnails(
    context: dg.AssetExecutionContext,
    config: ThumbnailConfig,
    database: dg.ResourceParam[Databases],
) -> dg.MaterializeResult:
    for day in partition_dates(context):
        report = thumbnails_day(
            database,
            day,
            size=config.size,
            max_workers=config.max_workers,
            sample_size=0,
        )
        for path, reason in report.skipped:
            context.log.warning(f"thumbnail skipped for {path}: {reason}")
        sheet = day_sheet(
            database, day, name="thumbnails-sheet", max_tiles=config.sample_size, size=config.size
        )
        add_day_metadata(
            context,
            day,
            {
                **sheet_metadata(sheet),
                "thumbnails_rendered": report.rendered,
                "files_written": report.written,
                "unchanged": report.unchanged,
                "skipped": len(report.skipped),
                "skipped_reasons": dg.MetadataValue.json(
                    {Path(p).name: why for p, why in report.skipped}
                ),
                "output_folder": dg.MetadataValue.path(str(report.folder or "")),
                **row_count_metadata(database, THUMBS, day),
            },
        )
    return dg.MaterializeResult(metadata=step_process_metadata())
