"""A day's QA at a glance, without Dagster: the check verdicts and the per-image table rows.

`image_qa` turns these into asset-check evaluations (one set per observation day) and a table
in the UI. Kept apart from the asset so the verdicts can be tested on plain rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.qa.statistics import GRADES
from resources.repositories.products import ImageQADetail

#: Characters of the joined reasons in one table cell (the UI table must fit 1440 px).
REASONS_CHARS = 120
#: Paths listed as examples in a check's metadata.
EXAMPLES = 20


@dataclass(frozen=True)
class CheckVerdict:
    """One check's outcome for one day."""

    passed: bool
    description: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class DayChecks:
    """The three QA check verdicts of one day, and the counts behind them."""

    grades: dict[str, int]
    fail_fraction: float
    by_name: dict[str, CheckVerdict] = field(default_factory=dict)


def day_checks(details: list[ImageQADetail], limit: float) -> DayChecks:
    """Fail share ≤ limit, every image graded, every image with a beam, for one day's images.

    Names are those of `assets.qa.definitions` (fail_share_below_limit, every_image_has_qa,
    beam_present_on_all_images).
    """
    n = len(details)
    grades = {g: sum(1 for d in details if d.grade == g) for g in GRADES}
    n_fail = grades["fail"]
    share = n_fail / n if n else 0.0
    missing = [Path(d.path).name for d in details if d.grade is None]
    no_beam = [Path(d.path).name for d in details if not d.has_beam]
    verdicts = {
        "fail_share_below_limit": CheckVerdict(
            passed=share <= limit,
            description=f"{n_fail} of {n} images failed QA ({share:.1%}); limit {limit:.1%}",
            metadata={"fail_fraction": share, "limit": limit, "failed": n_fail, "images": n},
        ),
        "every_image_has_qa": CheckVerdict(
            passed=not missing,
            description=f"{n - len(missing)} of {n} images have a QA row",
            metadata={"missing": len(missing), "examples": missing[:EXAMPLES]},
        ),
        "beam_present_on_all_images": CheckVerdict(
            passed=not no_beam,
            description=f"{len(no_beam)} of {n} images have no restoring beam",
            metadata={"without_beam": len(no_beam), "examples": no_beam[:EXAMPLES]},
        ),
    }
    return DayChecks(grades=grades, fail_fraction=share, by_name=verdicts)


def _mjy(value: float | None) -> float | None:
    return None if value is None else round(value * 1e3, 4)


def _reasons(reasons: list[str]) -> str:
    text = "; ".join(reasons)
    return text if len(text) <= REASONS_CHARS else text[: REASONS_CHARS - 1] + "…"


def qa_table_rows(details: list[ImageQADetail]) -> list[dict[str, Any]]:
    """One row per image, in the given order: image, grade, rms (mJy), peak (Jy), reasons."""
    return [
        {
            "image": Path(d.path).name,
            "grade": (d.grade if d.qa_current else None) or "ungraded",
            "rms_mjy": _mjy(d.rms_jy),
            "peak_jy": None if d.peak_jy is None else round(d.peak_jy, 4),
            "reasons": _reasons(d.reasons) if d.qa_current else "",
        }
        for d in details
    ]
