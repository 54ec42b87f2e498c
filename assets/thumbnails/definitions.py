"""`image_thumbnails`: a PNG preview of every image of the day, shown in the Dagster UI.

The asset's spec, run config and metadata; the `image_products` op
(assets/products/definitions.py) materializes it from the same read of each plane as QA.
"""

import base64
from pathlib import Path

import dagster as dg
from pydantic import Field

from assets.catalogue.definitions import FITS_METADATA
from assets.partitions import DAILY_SPEC_POLICY
from assets.tables import table_definition_metadata
from assets.thumbnails.day import PREVIEW_TILES, DaySheet, ThumbnailReport
from resources.repositories.products import THUMBS


class ThumbnailConfig(dg.Config):
    """How the thumbnails and the day's contact sheet are drawn."""

    size: int = Field(default=256, description="Thumbnail size in pixels on the long side.")
    sample_size: int = Field(
        default=12, description="Tiles on the day's contact sheet (worst QA grade first)."
    )


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


IMAGE_THUMBNAILS = dg.AssetSpec(
    "image_thumbnails",
    deps=[FITS_METADATA],
    **DAILY_SPEC_POLICY,
    kinds={"png", "sql"},
    tags={"domain": "thumbnails"},
    metadata=table_definition_metadata(THUMBS),
    description="PNG preview per image (block-averaged, ZScale limits, asinh stretch) under "
    "`CONTIMG_THUMBNAIL_DIR/<obs date>/`, recorded in table `products.thumbnails`; a contact "
    "sheet per day, worst QA grade first when QA has run.",
)


def thumbnails_day_metadata(report: ThumbnailReport, sheet: DaySheet) -> dict:
    """What one day's `image_thumbnails` materialization shows."""
    return {
        **sheet_metadata(sheet),
        "thumbnails_rendered": report.rendered,
        "files_written": report.written,
        "unchanged": report.unchanged,
        "skipped": len(report.skipped),
        "skipped_reasons": dg.MetadataValue.json({Path(p).name: why for p, why in report.skipped}),
        "output_folder": dg.MetadataValue.path(str(report.folder or "")),
    }
