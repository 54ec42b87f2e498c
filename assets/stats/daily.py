"""Per-observation-day pipeline statistics and the rms-over-time plot, without Dagster.

The ``pipeline_stats`` asset feeds :func:`summarize_day` one :class:`DayImage` per graded image of
the partition (plus the day's failed-parse count) and stores the :class:`DayStats` as a row; the
plot is :func:`render_rms_plot`. Everything is NaN-safe: an image without a finite rms, dynamic
range or declination is counted but left out of that statistic, and an empty day yields zero
counts and ``None`` statistics rather than warnings.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from assets.qa.statistics import GRADES
from assets.stats.plot import png_bytes, points_image
from resources.models._common import as_utc

if TYPE_CHECKING:
    from PIL import Image

GRADE_COLOURS: dict[str, str] = {"good": "#2ca02c", "warn": "#ff7f0e", "fail": "#d62728"}
UNGRADED = "ungraded"


@dataclass(frozen=True)
class DayImage:
    """What the day's summary needs from one image (an ``images`` + ``image_qa`` join)."""

    grade: str | None  # "good" / "warn" / "fail"; None when QA has not run
    rms: float | None  # Jy/beam
    dynamic_range: float | None
    dec_deg: float | None
    date_obs: dt.datetime | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> DayImage:
        """Accept DB rows or dicts; ``dec`` is an accepted alias of ``dec_deg``."""
        return cls(
            grade=row.get("grade"),
            rms=row.get("rms"),
            dynamic_range=row.get("dynamic_range"),
            dec_deg=row.get("dec_deg", row.get("dec")),
            date_obs=row.get("date_obs"),
        )


@dataclass(frozen=True)
class DayStats:
    """Summary of one observation day. Statistics are ``None`` when no image has a finite value."""

    obs_date: dt.date | None
    n_images: int
    counts: dict[str, int]  # good / warn / fail / ungraded, always all four keys
    rms_median: float | None  # Jy/beam
    rms_p95: float | None  # Jy/beam (numpy's default linear-interpolation percentile)
    dynamic_range_median: float | None
    dec_strips: dict[str, int]  # "+50..+55" -> images, ordered by declination
    n_without_dec: int
    failed_parses: int
    strip_width_deg: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fail_fraction(self) -> float:
        """Share of graded images that failed (0 for a day without graded images)."""
        graded = sum(self.counts[g] for g in GRADES)
        return self.counts["fail"] / graded if graded else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["obs_date"] = self.obs_date.isoformat() if self.obs_date else None
        out["fail_fraction"] = self.fail_fraction
        return out


def _as_float(value: Any) -> float | None:
    """float(value) or None: DB rows may hold None, Decimal or numpy scalars."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _finite(values: Iterable[Any]) -> np.ndarray:
    arr = np.array([f for f in map(_as_float, values) if f is not None], dtype=np.float64)
    return arr[np.isfinite(arr)]


def _format_bound(value: float, width: float) -> str:
    if float(width).is_integer() and float(value).is_integer():
        return f"{int(value):+03d}"
    return f"{value:+.1f}"


def dec_strip(dec_deg: float, width_deg: float = 5.0) -> tuple[float, str] | None:
    """(lower bound, label like "+50..+55") of the strip holding ``dec_deg``; None if invalid.

    Strips are half-open [lo, lo + width); +90 belongs to the top strip.
    """
    if not math.isfinite(dec_deg) or not -90.0 <= dec_deg <= 90.0:
        return None
    index = math.floor(dec_deg / width_deg)
    lo = index * width_deg
    if lo >= 90.0:
        lo = (math.ceil(90.0 / width_deg) - 1) * width_deg
    hi = lo + width_deg
    return lo, f"{_format_bound(lo, width_deg)}..{_format_bound(hi, width_deg)}"


def summarize_day(
    rows: Iterable[DayImage | Mapping[str, Any]],
    *,
    failed_parses: int = 0,
    strip_width_deg: float = 5.0,
    obs_date: dt.date | None = None,
) -> DayStats:
    """Counts by grade, rms median / 95th percentile, median DR, images per declination strip."""
    if not (math.isfinite(strip_width_deg) and 0 < strip_width_deg <= 180):
        raise ValueError(f"strip_width_deg must be within (0, 180], got {strip_width_deg}")
    images = [r if isinstance(r, DayImage) else DayImage.from_mapping(r) for r in rows]
    counts = {g: 0 for g in GRADES} | {UNGRADED: 0}
    for image in images:
        counts[image.grade if image.grade in GRADES else UNGRADED] += 1

    rms = _finite(i.rms for i in images)
    drs = _finite(i.dynamic_range for i in images)

    strips: dict[float, tuple[str, int]] = {}
    n_without_dec = 0
    for image in images:
        dec = _as_float(image.dec_deg)
        found = None if dec is None else dec_strip(dec, strip_width_deg)
        if found is None:
            n_without_dec += 1
            continue
        lo, label = found
        strips[lo] = (label, strips.get(lo, (label, 0))[1] + 1)

    return DayStats(
        obs_date=obs_date,
        n_images=len(images),
        counts=counts,
        rms_median=float(np.median(rms)) if rms.size else None,
        rms_p95=float(np.percentile(rms, 95)) if rms.size else None,
        dynamic_range_median=float(np.median(drs)) if drs.size else None,
        dec_strips={label: n for _, (label, n) in sorted(strips.items())},
        n_without_dec=n_without_dec,
        failed_parses=int(failed_parses),
        strip_width_deg=float(strip_width_deg),
    )


def render_rms_plot(
    points: Sequence[tuple[dt.datetime, float | None, str | None]],
    *,
    title: str | None = None,
    width_px: int = 800,
    height_px: int = 360,
) -> bytes:
    """PNG of `rms_plot_image`."""
    return png_bytes(rms_plot_image(points, title=title, width_px=width_px, height_px=height_px))


def rms_plot_image(
    points: Sequence[tuple[dt.datetime, float | None, str | None]],
    *,
    title: str | None = None,
    width_px: int = 800,
    height_px: int = 360,
) -> Image.Image:
    """The picture of rms (mJy/beam) against observation time (UTC), one colour per grade.

    Drawn with PIL (`assets.stats.plot`: a few ms, where a matplotlib figure took ~90 ms per day
    of a range run); identical points give identical bytes. Points without a finite rms are left
    out and counted in the title; the y axis turns logarithmic when the rms spans more than a
    factor of 20.
    """
    kept = []
    for t, r, g in points:
        value = _as_float(r)
        if value is not None and math.isfinite(value):
            kept.append((as_utc(t), value * 1e3, g if g in GRADES else UNGRADED))
    dropped = len(points) - len(kept)
    heading = title or "image rms by QA grade"
    if dropped:
        heading += f" ({dropped} without rms)"
    return points_image(
        kept,
        grades=(*GRADES, UNGRADED),
        colours=GRADE_COLOURS,
        title=heading,
        width_px=width_px,
        height_px=height_px,
        empty_text="no images with a finite rms",
        xlabel="observation time (UTC)",
        ylabel="rms (mJy/beam)",
    )
