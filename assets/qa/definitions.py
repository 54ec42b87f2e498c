"""`image_qa`: one grade (good / warn / fail) with reasons per image, and its asset checks.

The checks are computed from the database after the grades are stored. Two are blocking, so a
bad day does not flow into `pipeline_stats`: the share of `fail` must stay under the limit, and
every image must have a QA row. The beam check warns only: a missing beam already makes the
image `warn`, and one such image should not hold back a day's statistics.
"""

import dagster as dg

from assets.catalogue.definitions import fits_metadata
from assets.partitions import DAILY_PRODUCT_POLICY, partition_dates
from assets.qa.grading import grade_day
from assets.qa.statistics import QAThresholds
from assets.runtime import step_process_metadata
from resources.database import Databases
from resources.repositories.products import qa_of_day
from resources.settings import env_float

FAIL_SHARE_CHECK = "fail_share_below_limit"
COVERAGE_CHECK = "every_image_has_qa"
BEAM_CHECK = "beam_present_on_all_images"

_DEFAULTS = QAThresholds()


class QAConfig(dg.Config):
    """Grade thresholds and the day-level limit of the check.

    The threshold defaults come from :class:`QAThresholds`, their single source of truth, so
    the run config and the grading code cannot disagree.
    """

    fail_dynamic_range: float = _DEFAULTS.fail_dynamic_range
    warn_dynamic_range: float = _DEFAULTS.warn_dynamic_range
    warn_rms_jy: float = _DEFAULTS.warn_rms_jy
    warn_nan_fraction: float = _DEFAULTS.warn_nan_fraction
    require_beam: bool = _DEFAULTS.require_beam
    # None: CONTIMG_QA_MAX_FAIL_FRACTION, else its registry default (read at run time)
    max_fail_fraction: float | None = None
    max_workers: int = 2
    force: bool = False  # re-grade images whose QA is up to date


@dg.asset(
    deps=[fits_metadata],
    **DAILY_PRODUCT_POLICY,
    kinds={"sql"},
    check_specs=[
        dg.AssetCheckSpec(
            FAIL_SHARE_CHECK,
            asset="image_qa",
            blocking=True,
            description="Share of images graded `fail` is below the configured limit.",
        ),
        dg.AssetCheckSpec(
            COVERAGE_CHECK,
            asset="image_qa",
            blocking=True,
            description="Every catalogued image of the partition has a QA row.",
        ),
        dg.AssetCheckSpec(
            BEAM_CHECK,
            asset="image_qa",
            description="Every image of the partition records a restoring beam.",
        ),
    ],
    description="Robust noise (1.4826 x MAD), peak, dynamic range, NaN fraction and beam sanity "
    "per image, graded good / warn / fail with reasons (docs/qa.md).",
)
def image_qa(
    context: dg.AssetExecutionContext, config: QAConfig, database: dg.ResourceParam[Databases]
):
    thresholds = QAThresholds(
        fail_dynamic_range=config.fail_dynamic_range,
        warn_dynamic_range=config.warn_dynamic_range,
        warn_rms_jy=config.warn_rms_jy,
        warn_nan_fraction=config.warn_nan_fraction,
        require_beam=config.require_beam,
    )
    limit = (
        config.max_fail_fraction
        if config.max_fail_fraction is not None
        else env_float("CONTIMG_QA_MAX_FAIL_FRACTION")
    )
    dates = partition_dates(context)
    totals = {"good": 0, "warn": 0, "fail": 0}
    graded = skipped = published = staged = 0
    for day in dates:
        report = grade_day(
            database, day, thresholds, max_workers=config.max_workers, force=config.force
        )
        for path, why in report.unreadable:
            context.log.warning(f"{path}: {why}")
        for g, n in report.grades.items():
            totals[g] += n
        graded += report.graded
        skipped += report.skipped_unchanged
        published += report.published
        staged += report.left_in_staging

    rows = []
    for day in dates:
        with database.connect("products") as conn:
            rows += qa_of_day(conn, day)
    n = len(rows)
    n_fail = sum(1 for r in rows if r.grade == "fail")
    missing = [r.path for r in rows if r.grade is None]
    no_beam = [r.path for r in rows if not r.has_beam]
    share = n_fail / n if n else 0.0
    day_grades = {g: sum(1 for r in rows if r.grade == g) for g in ("good", "warn", "fail")}
    yield dg.MaterializeResult(
        metadata={
            "images": n,
            "graded_this_run": graded,
            "unchanged_skipped": skipped,
            "grades": dg.MetadataValue.json(day_grades),
            "grades_this_run": dg.MetadataValue.json(totals),
            "fail_fraction": round(share, 4),
            "products_published": published,
            "products_left_in_staging": staged,
            "thresholds": dg.MetadataValue.json(thresholds.to_dict()),
            **step_process_metadata(),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=FAIL_SHARE_CHECK,
                passed=share <= limit,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{n_fail} of {n} images failed QA ({share:.1%}); limit {limit:.1%}",
                metadata={"fail_fraction": share, "limit": limit, "failed": n_fail, "images": n},
            ),
            dg.AssetCheckResult(
                check_name=COVERAGE_CHECK,
                passed=not missing,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"{n - len(missing)} of {n} images have a QA row",
                metadata={"missing": len(missing), "examples": dg.MetadataValue.json(missing[:20])},
            ),
            dg.AssetCheckResult(
                check_name=BEAM_CHECK,
                passed=not no_beam,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{len(no_beam)} of {n} images have no restoring beam",
                metadata={
                    "without_beam": len(no_beam),
                    "examples": dg.MetadataValue.json(no_beam[:20]),
                },
            ),
        ],
    )
