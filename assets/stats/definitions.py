"""`pipeline_stats`: per observation day, what arrived, how it graded, how noisy it was."""

import base64
import datetime as dt
import time

import dagster as dg

from assets.partitions import DAILY_PRODUCT_POLICY, add_day_metadata, partition_dates
from assets.qa.definitions import IMAGE_QA
from assets.runtime import step_process_metadata
from assets.stats.daily import DayImage, DayStats, rms_plot_image, summarize_day
from assets.stats.plot import png_bytes
from assets.tables import row_count_metadata, table_definition_metadata
from assets.thumbnails.day import write_preview
from assets.thumbnails.definitions import IMAGE_THUMBNAILS
from assets.thumbnails.render import compact_png
from resources.database import Databases
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import DAILY, qa_details_of_day, upsert_daily_stats

#: Colours of the inline plot preview (a plot has few: grades, axes, grid, antialiasing).
PLOT_PREVIEW_COLOURS = 32


def stats_row(stats: DayStats) -> dict:
    """The `daily_stats` row of one day."""
    return {
        "obs_date": stats.obs_date,
        "n_images": stats.n_images,
        "n_good": stats.counts["good"],
        "n_warn": stats.counts["warn"],
        "n_fail": stats.counts["fail"],
        "n_failed_parses": stats.failed_parses,
        "rms_median_jy": stats.rms_median,
        "rms_p95_jy": stats.rms_p95,
        "dr_median": stats.dynamic_range_median,
        "images_per_dec_strip": stats.dec_strips,
    }


# Short headers of narrow columns: the table must fit a 1440 px wide UI. The day is the
# partition, so it is not a column; the strips are a table of their own.
_COLUMNS = [
    ("images", "int", "images catalogued"),
    ("good", "int", "graded good"),
    ("warn", "int", "graded warn"),
    ("fail", "int", "graded fail"),
    ("failed_parses", "int", "files that could not be read"),
    ("rms_p50_mjy", "float", "median rms, mJy/beam"),
    ("rms_p95_mjy", "float", "95th percentile rms, mJy/beam"),
    ("dr_p50", "float", "median dynamic range"),
]


def _mjy(value: float | None) -> float | None:
    return None if value is None else round(value * 1e3, 4)


def stats_table(stats: DayStats) -> dg.TableMetadataValue:
    """The day's `daily_stats` row in UI units (mJy, one decimal of DR)."""
    dr = stats.dynamic_range_median
    record = {
        "images": stats.n_images,
        "good": stats.counts["good"],
        "warn": stats.counts["warn"],
        "fail": stats.counts["fail"],
        "failed_parses": stats.failed_parses,
        "rms_p50_mjy": _mjy(stats.rms_median),
        "rms_p95_mjy": _mjy(stats.rms_p95),
        "dr_p50": None if dr is None else round(dr, 1),
    }
    return dg.MetadataValue.table(
        records=[dg.TableRecord(record)],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(n, t, description=d) for n, t, d in _COLUMNS]
        ),
    )


def strips_table(stats: DayStats) -> dg.TableMetadataValue:
    """Images per declination strip, one short row each (was one long cell)."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"dec_strip": k, "images": v}) for k, v in stats.dec_strips.items()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("dec_strip", "string", description="declination, degrees"),
                dg.TableColumn("images", "int"),
            ]
        ),
    )


@dg.asset(
    deps=[IMAGE_QA, IMAGE_THUMBNAILS],
    **DAILY_PRODUCT_POLICY,
    kinds={"sql"},
    tags={"domain": "stats"},
    metadata=table_definition_metadata(DAILY),
    description="Daily counts by grade, median / 95th percentile rms, median dynamic range, "
    "images per declination strip and failed parses, in table `products.daily_stats`, with a "
    "plot of the day's rms by grade.",
)
def pipeline_stats(
    context: dg.AssetExecutionContext, database: dg.ResourceParam[Databases]
) -> dg.MaterializeResult:
    for day in partition_dates(context):
        started = time.perf_counter()
        with database.connect("products") as conn:
            rows = qa_details_of_day(conn, day)
        failed = ingest_queue.counts(database.engine("ingest"), obs_date=day)["failed"]
        stats = summarize_day(
            [DayImage(r.grade, r.rms_jy, r.dynamic_range, r.dec_deg, r.date_obs) for r in rows],
            failed_parses=failed,
            obs_date=day,
        )
        with database.begin("products") as conn:
            upsert_daily_stats(conn, stats_row(stats))
        points: list[tuple[dt.datetime, float | None, str | None]] = [
            (r.date_obs, r.rms_jy, r.grade) for r in rows if r.date_obs is not None
        ]
        plot = rms_plot_image(points, title=f"rms by grade, {day.isoformat()}")
        plot_path = write_preview(png_bytes(plot), day, "rms-plot")
        preview = base64.b64encode(compact_png(plot, colors=PLOT_PREVIEW_COLOURS)).decode("ascii")
        add_day_metadata(
            context,
            day,
            {
                "daily_stats": stats_table(stats),
                "images_per_dec_strip": strips_table(stats),
                "rms_plot": dg.MetadataValue.md(
                    f"![rms over time](data:image/png;base64,{preview})\n\n"
                    f"Full-size plot: `{plot_path}`"
                ),
                "rms_plot_file": dg.MetadataValue.path(str(plot_path)),
                "images": stats.n_images,
                "failed_parses": stats.failed_parses,
                "fail_fraction": round(stats.fail_fraction, 4),
                # a number per day: the UI plots numeric metadata across partitions
                "rms_median_mjy": dg.MetadataValue.null()
                if stats.rms_median is None
                else _mjy(stats.rms_median),
                **row_count_metadata(database, DAILY, day),
                "duration_s": round(time.perf_counter() - started, 3),
            },
        )
    return dg.MaterializeResult(metadata=step_process_metadata())
