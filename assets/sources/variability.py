"""Variability statistics of one light curve, as the VAST pipeline defines them.

- V, the modulation index (coefficient of variation): std(f, ddof=1) / mean(f).
- η, the weighted reduced χ² of the fluxes against their weighted mean (TraP, VAST):
  η = N / (N − 1) · (⟨w f²⟩ − ⟨w f⟩² / ⟨w⟩), w = 1 / σ², ⟨·⟩ the plain mean over the N points.
- For a pair of epochs (a, b), the two-epoch statistics of Mooley et al. (2016):
  Vs = (f_a − f_b) / sqrt(σ_a² + σ_b²) and m = 2 (f_a − f_b) / (f_a + f_b).
  VAST keeps, per source, the pair with the largest |m| among those with |Vs| ≥ `vs_min`
  (4.3 by default) and stores its |Vs| and |m|.

VAST builds a table of every pair of every source to find that pair, its known memory blow-up
(N² / 2 rows per source). Here the pairs of one light curve are formed in blocks of rows and
only the running best is kept: memory O(block × N), nothing stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BLOCK = 512  # rows of the pair matrix formed at once: 512 x N float64, 4 MB at N = 1000


def v_index(flux: np.ndarray) -> float:
    """The modulation index std(f, ddof=1) / mean(f); NaN for fewer than two points or a zero
    mean."""
    f = np.asarray(flux, dtype=np.float64)
    if f.size < 2:
        return float("nan")
    mean = f.mean()
    if mean == 0.0:
        return float("nan")
    return float(f.std(ddof=1) / mean)


def eta(flux: np.ndarray, flux_err: np.ndarray) -> float:
    """The weighted reduced χ² η = N/(N−1) (⟨w f²⟩ − ⟨w f⟩²/⟨w⟩), w = 1/σ²; NaN for fewer than
    two points or a non-positive error."""
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(flux_err, dtype=np.float64)
    n = f.size
    if n < 2 or e.shape != f.shape or not np.all(e > 0):
        return float("nan")
    w = 1.0 / (e * e)
    return float(n / (n - 1) * (np.mean(w * f * f) - np.mean(w * f) ** 2 / np.mean(w)))


@dataclass(frozen=True)
class Pair:
    """The two-epoch statistics of one pair (a before b in the light curve's order)."""

    a: int
    b: int
    vs: float
    m: float


def max_significant_pair(
    flux: np.ndarray, flux_err: np.ndarray, vs_min: float = 4.3
) -> Pair | None:
    """The pair with the largest |m| among those with |Vs| ≥ vs_min, or None if none is.

    Ties in |m| go to the first pair in row order (a, then b). Pairs whose flux sum is zero
    (m undefined) are left out, as are points with a non-finite flux or a non-positive error.
    """
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(flux_err, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(f) & np.isfinite(e) & (e > 0))
    f, e = f[ok], e[ok]
    n = f.size
    if n < 2:
        return None
    var = e * e
    best: Pair | None = None
    best_m = -1.0
    for start in range(0, n - 1, _BLOCK):
        rows = np.arange(start, min(start + _BLOCK, n - 1))
        diff = f[rows, None] - f[None, :]
        total = f[rows, None] + f[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            vs = diff / np.sqrt(var[rows, None] + var[None, :])
            m = 2.0 * diff / total
        upper = np.arange(n)[None, :] > rows[:, None]  # each pair once, a < b
        score = np.where(upper & (np.abs(vs) >= vs_min) & np.isfinite(m), np.abs(m), -1.0)
        k = int(np.argmax(score))
        i, j = divmod(k, n)
        if score[i, j] > best_m:
            best_m = float(score[i, j])
            best = Pair(int(ok[rows[i]]), int(ok[j]), float(vs[i, j]), float(m[i, j]))
    return best
