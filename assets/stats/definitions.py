"""`pipeline_stats`: per observation day, what arrived, how it graded, how noisy it was."""

import base64
import datetime as dt

import dagster as dg

from assets.partitions import DAILY_PRODUCT_POLICY, partition_dates
from assets.qa.definitions import image_qa
from assets.runtime import step_process_metadata
from assets.stats.daily import DayImage, DayStats, render_rms_plot, summarize_day
from assets.thumbnails.definitions import image_thumbnails
from resources.database import Databases
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import qa_of_day, upsert_daily_stats


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


_COLUMNS = [
    ("obs_date", "string"),
    ("images", "int"),
    ("good", "int"),
    ("warn", "int"),
    ("fail", "int"),
    ("failed_parses", "int"),
    ("rms_median_mjy", "float"),
    ("rms_p95_mjy", "float"),
    ("dr_median", "float"),
    ("dec_strips", "string"),
]


def _mjy(value: float | None) -> float | None:
    return None if value is None else round(value * 1e3, 4)


@dg.asset(
    deps=[image_qa, image_thumbnails],
    **DAILY_PRODUCT_POLICY,
    kinds={"sql"},
    description="Daily counts by grade, median / 95th percentile rms, median dynamic range, "
    "images per declination strip and failed parses, in `daily_stats`, with a plot.",
)
def pipeline_stats(
    context: dg.AssetExecutionContext, database: dg.ResourceParam[Databases]
) -> dg.MaterializeResult:
    days: list[DayStats] = []
    points: list[tuple[dt.datetime, float | None, str | None]] = []
    for day in partition_dates(context):
        with database.connect("products") as conn:
            rows = qa_of_day(conn, day)
        failed = ingest_queue.counts(database.engine("ingest"), obs_date=day)["failed"]
        stats = summarize_day(
            [DayImage(r.grade, r.rms_jy, r.dynamic_range, r.dec_deg, r.date_obs) for r in rows],
            failed_parses=failed,
            obs_date=day,
        )
        with database.begin("products") as conn:
            upsert_daily_stats(conn, stats_row(stats))
        days.append(stats)
        points += [(r.date_obs, r.rms_jy, r.grade) for r in rows if r.date_obs is not None]
    label = (
        days[0].obs_date.isoformat()
        if len(days) == 1
        else (f"{days[0].obs_date}...{days[-1].obs_date}")
    )
    plot = render_rms_plot(points, title=f"rms by grade, {label}")
    table = dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "obs_date": s.obs_date.isoformat(),
                    "images": s.n_images,
                    "good": s.counts["good"],
                    "warn": s.counts["warn"],
                    "fail": s.counts["fail"],
                    "failed_parses": s.failed_parses,
                    "rms_median_mjy": _mjy(s.rms_median),
                    "rms_p95_mjy": _mjy(s.rms_p95),
                    "dr_median": None
                    if s.dynamic_range_median is None
                    else round(s.dynamic_range_median, 1),
                    "dec_strips": ", ".join(f"{k}: {v}" for k, v in s.dec_strips.items()),
                }
            )
            for s in days
        ],
        schema=dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in _COLUMNS]),
    )
    encoded = base64.b64encode(plot).decode("ascii")
    return dg.MaterializeResult(
        metadata={
            "daily_stats": table,
            "rms_plot": dg.MetadataValue.md(f"![rms over time](data:image/png;base64,{encoded})"),
            "images": sum(s.n_images for s in days),
            "failed_parses": sum(s.failed_parses for s in days),
            **step_process_metadata(),
        }
    )
