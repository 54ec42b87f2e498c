"""`image_qa`: one grade (good / warn / fail) with reasons per image, and its asset checks.

The asset's spec, run config, checks and metadata; the `image_products` op
(assets/products/definitions.py) materializes it from the same read of each plane as the
thumbnails.

The checks are computed from the database after the grades are stored, once per observation
day, and recorded for that day's partition (partitioned asset checks): day D's page shows day
D's results, and a later day's pass does not hide an earlier day's failure. Two are blocking,
so a bad day does not flow into `pipeline_stats`: the share of `fail` must stay under the
limit, and every image must have a QA row. The beam check warns only: a missing beam already
makes the image `warn`, and one such image should not hold back a day's statistics.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from assets.catalogue.definitions import FITS_METADATA
from assets.partitions import DAILY_SPEC_POLICY, daily_check_spec, day_check_evaluations
from assets.qa.grading import GradingReport
from assets.qa.statistics import QAThresholds
from assets.qa.summary import DayChecks, qa_table_rows
from assets.tables import table_definition_metadata
from assets.thumbnails.day import worst_first
from resources.repositories.products import QA, ImageQADetail
from resources.settings import env_float

FAIL_SHARE_CHECK = "fail_share_below_limit"
COVERAGE_CHECK = "every_image_has_qa"
BEAM_CHECK = "beam_present_on_all_images"

_DEFAULTS = QAThresholds()
#: Rows of the per-image table (worst first); the QA report files have every image.
QA_TABLE_ROWS = 100


# The defaults below are those of `QAThresholds` (one source of truth for run config and code).
class QAConfig(dg.Config):
    """Grade thresholds of the QA of each image (docs/qa.md) and the day's fail-share limit."""

    fail_dynamic_range: float = Field(
        default=_DEFAULTS.fail_dynamic_range,
        description="An image fails when its dynamic range (peak / rms) is below this.",
    )
    warn_dynamic_range: float = Field(
        default=_DEFAULTS.warn_dynamic_range,
        description="An image gets a warning when its dynamic range is below this.",
    )
    warn_rms_jy: float = Field(
        default=_DEFAULTS.warn_rms_jy,
        description="An image gets a warning when its rms noise is above this (Jy/beam).",
    )
    warn_nan_fraction: float = Field(
        default=_DEFAULTS.warn_nan_fraction,
        description="An image gets a warning when more than this share of pixels is blank.",
    )
    require_beam: bool = Field(
        default=_DEFAULTS.require_beam,
        description="Warn when an image has no valid restoring beam in its header.",
    )
    max_fail_fraction: float | None = Field(
        default=None,
        description="Largest share of failed images a day may have before its blocking check "
        "fails; empty: the CONTIMG_QA_MAX_FAIL_FRACTION setting.",
    )
    force: bool = Field(
        default=False,
        description="Grade every image again, also those whose grade is up to date.",
    )


def _check_spec(name: str, *, blocking: bool, description: str) -> dg.AssetCheckSpec:
    return daily_check_spec(name, asset="image_qa", blocking=blocking, description=description)


CHECK_SPECS = [
    _check_spec(
        FAIL_SHARE_CHECK,
        blocking=True,
        description="Share of the day's images graded `fail` is below the configured limit.",
    ),
    _check_spec(
        COVERAGE_CHECK,
        blocking=True,
        description="Every catalogued image of the day has a QA row.",
    ),
    _check_spec(
        BEAM_CHECK,
        blocking=False,
        description="Every image of the day records a restoring beam.",
    ),
]


def qa_table(rows: list[dict]) -> dg.TableMetadataValue:
    """The per-image verdicts, worst first: five short columns, reasons last (the widest)."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord(r) for r in rows],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("image", "string", description="file name"),
                dg.TableColumn("grade", "string", description="good / warn / fail"),
                dg.TableColumn("rms_mjy", "float", description="robust rms, mJy/beam"),
                dg.TableColumn("peak_jy", "float", description="largest finite pixel, Jy/beam"),
                dg.TableColumn("reasons", "string", description="why not good (docs/qa.md)"),
            ]
        ),
    )


IMAGE_QA = dg.AssetSpec(
    "image_qa",
    deps=[FITS_METADATA],
    **DAILY_SPEC_POLICY,
    kinds={"sql"},
    tags={"domain": "qa"},
    metadata=table_definition_metadata(QA),
    description="Robust noise (1.4826 x MAD), peak, dynamic range, NaN fraction and beam sanity "
    "per image, graded good / warn / fail with reasons (docs/qa.md), in table "
    "`products.image_qa`; per day a table of the images worst first and a graded contact sheet.",
)


def thresholds_of(config: QAConfig) -> QAThresholds:
    return QAThresholds(
        fail_dynamic_range=config.fail_dynamic_range,
        warn_dynamic_range=config.warn_dynamic_range,
        warn_rms_jy=config.warn_rms_jy,
        warn_nan_fraction=config.warn_nan_fraction,
        require_beam=config.require_beam,
    )


def fail_limit(config: QAConfig) -> float:
    """The day's fail-share limit: run config, else CONTIMG_QA_MAX_FAIL_FRACTION."""
    if config.max_fail_fraction is not None:
        return config.max_fail_fraction
    return env_float("CONTIMG_QA_MAX_FAIL_FRACTION")


def qa_day_metadata(report: GradingReport, details: list[ImageQADetail], checks: DayChecks) -> dict:
    """What one day's `image_qa` materialization shows (the contact sheet is added by the op)."""
    rows = qa_table_rows(worst_first(details))
    return {
        "images": len(details),
        "graded_this_run": report.graded,
        "unchanged_skipped": report.skipped_unchanged,
        "grades": dg.MetadataValue.json(checks.grades),
        "grades_this_run": dg.MetadataValue.json(report.grades),
        "fail_fraction": round(checks.fail_fraction, 4),
        "products_published": report.published,
        "products_left_in_staging": report.left_in_staging,
        "images_by_grade": qa_table(rows[:QA_TABLE_ROWS]),
        "images_shown": f"{min(len(rows), QA_TABLE_ROWS)} of {len(rows)}, worst first",
    }


def check_evaluations(
    context: dg.AssetExecutionContext, checks: dict[dt.date, DayChecks]
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Each day's QA check results for the day's partition (`day_check_evaluations`); a failed
    blocking one keeps `pipeline_stats` from running."""
    verdicts = {day: day_result.by_name for day, day_result in checks.items()}
    yield from day_check_evaluations(context, IMAGE_QA.key, CHECK_SPECS, verdicts)
