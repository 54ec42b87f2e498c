"""Image statistics and the one QA grade vocabulary (docs/qa.md), without Dagster.

The statistics are computed on a 2-D plane (``resources.fits.pixels.read_plane`` reduces cubes
to their first channel/Stokes plane) and graded against :class:`QAThresholds`:

* ``rms``  = 1.4826 × MAD of the finite pixels (robust noise; a Gaussian's σ);
* ``peak`` = the largest finite pixel;
* ``dynamic_range`` = peak / rms (``None`` when rms is 0 or undefined);
* ``nan_fraction`` = share of pixels that are not finite (NaN or ±inf: both are "blank").

Why a subsample: the median needs a selection over all values it sees, which for a 4096² image
is a 128 MB float64 working copy and ~10× the time of one pass. The MAD of a deterministic
strided subsample of ``n`` pixels differs from the full-image MAD by a relative standard
deviation of about ``1.166·sqrt(1/n − 1/N)`` for Gaussian noise (asymptotic variance of the
MAD estimator, 1.3605 σ²/n); ``ImageStats.rms_rel_error_bound`` reports five times that. With
the default ``max_samples`` (2¹⁸) the bound is at most 1.2 %, and below 1.7 % in the worst case
of a heavily blanked image (0 when every finite pixel is used). docs/qa.md has the details,
including the caveat for correlated (beam-smoothed) noise.

Peak, NaN fraction and the subsample are gathered in one pass over row chunks, so the only
full-chunk temporary is one boolean mask (a few MB) and a memory-mapped plane is read once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from resources.errors import ConfigurationError, QAError

Grade = Literal["good", "warn", "fail"]
GRADES: tuple[Grade, ...] = ("good", "warn", "fail")

MAD_TO_SIGMA = 1.4826
#: Asymptotic relative standard deviation of 1.4826·MAD for n Gaussian samples is MAD_REL_SD/√n.
MAD_REL_SD = 1.1664
#: The stated error bound is this many standard deviations.
ERROR_BOUND_SIGMAS = 5.0
DEFAULT_MAX_SAMPLES = 1 << 18
#: Elements per row chunk: bounds the boolean mask temporary to 4 MB.
_CHUNK_ELEMENTS = 1 << 22


# --- thresholds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAThresholds:
    """Grade limits (defaults: docs/qa.md). Comparisons are strict (see :func:`grade`).

    fail: no finite pixel, rms 0 or not finite, ``dynamic_range < fail_dynamic_range``;
    warn: ``dynamic_range < warn_dynamic_range``, ``rms > warn_rms_jy``,
    ``nan_fraction > warn_nan_fraction``, beam missing or invalid (when ``require_beam``).
    """

    fail_dynamic_range: float = 10.0
    warn_dynamic_range: float = 100.0
    warn_rms_jy: float = 0.010  # Jy/beam
    warn_nan_fraction: float = 0.5
    require_beam: bool = True

    def __post_init__(self) -> None:
        for name in ("fail_dynamic_range", "warn_dynamic_range", "warn_rms_jy"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(
                    f"qa.{name}", f"must be a finite number >= 0, got {value!r}"
                )
        if not 0.0 <= self.warn_nan_fraction <= 1.0:
            raise ConfigurationError(
                "qa.warn_nan_fraction", f"must be within 0..1, got {self.warn_nan_fraction!r}"
            )
        if self.warn_dynamic_range < self.fail_dynamic_range:
            raise ConfigurationError(
                "qa.warn_dynamic_range",
                f"{self.warn_dynamic_range:g} is below qa.fail_dynamic_range "
                f"{self.fail_dynamic_range:g}; a warning limit must not be stricter than failing",
            )

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> QAThresholds:
        """Build from a config dict (Dagster config, YAML, JSON); missing keys keep defaults.

        Unknown keys are an error rather than ignored, so a typo cannot silently fall back to
        a default threshold.
        """
        if not config:
            return cls()
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ConfigurationError(
                "qa", f"unknown threshold(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        values: dict[str, Any] = {}
        for key, raw in config.items():
            if key == "require_beam":
                if not isinstance(raw, bool):
                    raise ConfigurationError(f"qa.{key}", f"expected true/false, got {raw!r}")
                values[key] = raw
                continue
            if isinstance(raw, bool):
                raise ConfigurationError(f"qa.{key}", f"expected a number, got {raw!r}")
            try:
                values[key] = float(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"qa.{key}", f"expected a number, got {raw!r}") from exc
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageStats:
    """Statistics of one image plane. ``None`` means undefined (e.g. no finite pixel)."""

    rms: float | None  # 1.4826 × MAD, in the image's units (Jy/beam)
    peak: float | None  # largest finite pixel
    dynamic_range: float | None  # peak / rms; None when rms is 0 or undefined
    nan_fraction: float  # non-finite pixels / all pixels (1.0 for an empty plane)
    n_pixels: int
    n_finite: int
    median: float | None  # median of the pixels the estimator used
    estimator: str  # "mad-exact" (all finite pixels) or "mad-subsample"
    n_samples: int  # finite pixels the MAD was computed from
    sample_stride: int  # 1 for exact; else the stride of the deterministic subsample
    rms_rel_error_bound: float  # 5σ bound on |rms/rms_all_pixels − 1| for Gaussian noise

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_2d(plane: np.ndarray, source: str) -> np.ndarray:
    """View the input as rows × columns without copying the common 2-D case."""
    arr = np.asanyarray(plane)
    if isinstance(arr, np.ma.MaskedArray):
        # Masked pixels are blank, like NaN; the copy is acceptable for this rare input.
        arr = arr.astype(np.float64).filled(np.nan)
    if arr.dtype.kind not in "iuf":
        raise QAError(
            source,
            f"pixel data type {arr.dtype} is not numeric",
            hint="Pass the image plane as an integer or floating-point array.",
        )
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr.reshape(1, -1)
    if arr.ndim > 2:
        return arr.reshape(-1, arr.shape[-1])
    return arr


def _coprime_stride(stride: int, width: int) -> int:
    """Smallest stride ≥ ``stride`` coprime to the row width.

    A stride sharing a factor with the width would sample the same few columns in every row;
    a coprime stride walks a lattice that covers every column and every row evenly.
    """
    if stride <= 1 or width <= 1:
        return max(stride, 1)
    while math.gcd(stride, width) != 1:
        stride += 1
    return stride


def _median_inplace(values: np.ndarray) -> float:
    """Median by selection (np.partition, O(n)), same convention as np.median; reorders input."""
    n = values.size
    k = n // 2
    if n % 2:
        values.partition(k)
        return float(values[k])
    values.partition((k - 1, k))
    return 0.5 * (float(values[k - 1]) + float(values[k]))


def robust_rms(values: np.ndarray) -> tuple[float, float]:
    """(1.4826 × MAD, median) of a 1-D array of finite values; consumes (reorders) it."""
    if values.size == 0:
        return math.nan, math.nan
    med = _median_inplace(values)
    np.subtract(values, med, out=values)
    np.abs(values, out=values)
    return MAD_TO_SIGMA * _median_inplace(values), med


def compute_stats(
    plane: np.ndarray,
    *,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    source: str | Path = "<array>",
) -> ImageStats:
    """Robust statistics of one plane; never divides by zero and never emits a RuntimeWarning.

    Images with at most ``max_samples`` pixels use every finite pixel. Larger ones estimate the
    MAD from every ``stride``-th pixel in storage order (stride coprime to the row width, see
    :func:`_coprime_stride`); peak, finite count and NaN fraction always use every pixel. If
    blanking leaves fewer than ``max_samples // 2`` finite pixels in that subsample, a second pass
    samples the finite pixels themselves so the error bound still holds. ``source`` only names
    the image in error messages.
    """
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    name = str(source)
    arr = _as_2d(plane, name)
    n_rows, width = arr.shape
    n_pixels = int(arr.size)
    is_float = arr.dtype.kind == "f"

    stride = 1 if n_pixels <= max_samples else math.ceil(n_pixels / max_samples)
    stride = _coprime_stride(stride, width)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))

    n_finite = 0
    peak = -math.inf
    parts: list[np.ndarray] = []
    for r0 in range(0, n_rows, rows_per_chunk):
        chunk = arr[r0 : r0 + rows_per_chunk]
        if is_float:
            mask = np.isfinite(chunk)
            count = int(np.count_nonzero(mask))
            if count:
                peak = max(peak, float(np.max(chunk, where=mask, initial=-np.inf)))
        else:
            mask = None
            count = int(chunk.size)
            if count:
                peak = max(peak, float(chunk.max()))
        n_finite += count
        if stride == 1:
            picked = chunk[mask] if mask is not None else chunk.reshape(-1)
        else:
            flat = chunk.reshape(-1)
            picked = flat[(-r0 * width) % stride :: stride]
            if is_float:
                picked = picked[np.isfinite(picked)]
        parts.append(picked.astype(np.float64))

    sample = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
    del parts
    if stride > 1 and sample.size < min(n_finite, max_samples // 2):
        sample, stride = _sample_finite(arr, n_finite, max_samples, rows_per_chunk)

    nan_fraction = (n_pixels - n_finite) / n_pixels if n_pixels else 1.0
    exact = sample.size == n_finite
    n_samples = int(sample.size)
    if n_finite == 0:
        return ImageStats(
            rms=None,
            peak=None,
            dynamic_range=None,
            nan_fraction=nan_fraction,
            n_pixels=n_pixels,
            n_finite=0,
            median=None,
            estimator="mad-exact",
            n_samples=0,
            sample_stride=stride,
            rms_rel_error_bound=0.0,
        )

    rms, median = robust_rms(sample)
    rms_value: float | None = rms if math.isfinite(rms) else None
    dynamic_range: float | None = None
    if rms_value is not None and rms_value > 0.0:
        ratio = peak / rms_value  # Python floats: an overflow gives inf, never a warning
        dynamic_range = ratio if math.isfinite(ratio) else None
    bound = 0.0
    if not exact:
        bound = (
            ERROR_BOUND_SIGMAS * MAD_REL_SD * math.sqrt(max(0.0, 1.0 / n_samples - 1.0 / n_finite))
        )
    return ImageStats(
        rms=rms_value,
        peak=peak,
        dynamic_range=dynamic_range,
        nan_fraction=nan_fraction,
        n_pixels=n_pixels,
        n_finite=n_finite,
        median=median if math.isfinite(median) else None,
        estimator="mad-exact" if exact else "mad-subsample",
        n_samples=n_samples,
        sample_stride=stride if not exact else 1,
        rms_rel_error_bound=bound,
    )


def _sample_finite(
    arr: np.ndarray, n_finite: int, max_samples: int, rows_per_chunk: int
) -> tuple[np.ndarray, int]:
    """Every k-th finite pixel in storage order: the fallback for heavily blanked images."""
    stride = max(1, math.ceil(n_finite / max_samples))
    parts: list[np.ndarray] = []
    seen = 0
    for r0 in range(0, arr.shape[0], rows_per_chunk):
        chunk = arr[r0 : r0 + rows_per_chunk]
        finite = chunk[np.isfinite(chunk)]
        parts.append(finite[(-seen) % stride :: stride].astype(np.float64))
        seen += finite.size
    return np.concatenate(parts), stride


# --- grading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAResult:
    """The grade and every reason behind it (empty for ``good``)."""

    grade: Grade
    reasons: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True unless the grade is ``fail`` (``warn`` images are still usable)."""
        return self.grade != "fail"

    def to_dict(self) -> dict[str, Any]:
        return {"grade": self.grade, "reasons": list(self.reasons)}


def _fmt(value: float, limit: float) -> str:
    """Shortest rendering of ``value`` that does not print equal to ``limit``.

    Otherwise 9.9999 would read "10 < 10".
    """
    shown = f"{limit:g}"
    for digits in (3, 4, 6, 9, 12, 17):
        text = f"{value:.{digits}g}"
        if text != shown:
            return text
    return repr(value)


def _beam_reasons(major: float | None, minor: float | None, pa: float | None) -> list[str]:
    if major is None or minor is None:
        missing = [n for n, v in (("major", major), ("minor", minor)) if v is None]
        return [f"beam missing ({' and '.join(missing)} axis not in the header)"]
    reasons = []
    for label, value in (("major", major), ("minor", minor)):
        if not math.isfinite(value):
            reasons.append(f"beam {label} axis {value} is not finite")
        elif value <= 0:
            reasons.append(f"beam {label} axis {value:g} arcsec is not positive")
    if not reasons and minor > major * (1 + 1e-9):
        reasons.append(f"beam minor axis {minor:g} arcsec > major axis {major:g} arcsec")
    if pa is not None and not math.isfinite(pa):
        reasons.append(f"beam position angle {pa} is not finite")
    return reasons


def grade(
    stats: ImageStats,
    beam_major_arcsec: float | None = None,
    beam_minor_arcsec: float | None = None,
    beam_pa_deg: float | None = None,
    thresholds: QAThresholds | None = None,
) -> QAResult:
    """Grade one image: the worst applicable grade, with every reason found.

    Boundaries: a value exactly at a threshold does not trigger it (DR == 10 is not a fail,
    DR == 100 not a warning, rms == 10 mJy/beam and NaN fraction == 0.5 are fine). A missing
    position angle alone is accepted (circular beams need none); a NaN one is invalid.
    """
    t = thresholds or QAThresholds()
    fails: list[str] = []
    warns: list[str] = []

    if stats.n_finite == 0:
        fails.append(
            "no finite pixel (empty image)"
            if stats.n_pixels == 0
            else f"no finite pixel (all {stats.n_pixels} pixels are NaN or inf)"
        )
    elif stats.rms is None or not math.isfinite(stats.rms):
        fails.append("rms is not finite")
    elif stats.rms == 0.0:
        fails.append("rms is 0 (at least half the finite pixels share one value)")
    else:
        dr = stats.dynamic_range
        if dr is None or not math.isfinite(dr):
            fails.append("dynamic range is not finite")
        elif dr < t.fail_dynamic_range:
            fails.append(
                f"dynamic range {_fmt(dr, t.fail_dynamic_range)} < {t.fail_dynamic_range:g}"
            )
        elif dr < t.warn_dynamic_range:
            warns.append(
                f"dynamic range {_fmt(dr, t.warn_dynamic_range)} < {t.warn_dynamic_range:g}"
            )
        if stats.rms > t.warn_rms_jy:
            limit_mjy = t.warn_rms_jy * 1e3
            warns.append(
                f"rms {_fmt(stats.rms * 1e3, limit_mjy)} mJy/beam > {limit_mjy:g} mJy/beam"
            )

    if stats.n_pixels and stats.nan_fraction > t.warn_nan_fraction:
        limit_pct = t.warn_nan_fraction * 100
        warns.append(
            f"NaN fraction {_fmt(stats.nan_fraction * 100, limit_pct)} % > {limit_pct:g} %"
        )
    if t.require_beam:
        warns.extend(_beam_reasons(beam_major_arcsec, beam_minor_arcsec, beam_pa_deg))

    if fails:
        return QAResult("fail", tuple(fails + warns))
    if warns:
        return QAResult("warn", tuple(warns))
    return QAResult("good", ())


def worst_grade(grades: list[Grade]) -> Grade:
    """Combine grades (e.g. over a partition): fail beats warn beats good."""
    if "fail" in grades:
        return "fail"
    if "warn" in grades:
        return "warn"
    return "good"
