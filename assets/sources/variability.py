"""Variability statistics of one light curve, as the VAST pipeline defines them.

- V, the modulation index (coefficient of variation): std(f, ddof=1) / mean(f).
- η, the weighted reduced χ² of the fluxes against their weighted mean (TraP, VAST):
  η = N / (N − 1) · (⟨w f²⟩ − ⟨w f⟩² / ⟨w⟩), w = 1 / σ², ⟨·⟩ the plain mean over the N points.
- For a pair of epochs (a, b), the two-epoch statistics of Mooley et al. (2016):
  Vs = (f_a − f_b) / sqrt(σ_a² + σ_b²) and m = 2 (f_a − f_b) / (f_a + f_b).
  VAST keeps, per source, the pair with the largest |m| among those with |Vs| ≥ `vs_min`
  (4.3 by default) and stores its |Vs| and |m|.

Pairs are those of two positive fluxes (Mooley et al. define m for detections): where
f_a + f_b ≤ 0, m has a pole or changes sign and says nothing about variability. VAST also pairs
negative forced fluxes; for pairs of positive fluxes the two agree.

VAST builds a table of every pair of every source to find that pair, its known memory blow-up
(N² / 2 rows per source). `max_significant_pair` forms the pairs of one light curve in blocks
of rows and keeps only the running best: memory O(block × N), nothing stored.

`VariabilityState` is the same statistics kept up to date point by point, so that a day's
update reads only the day's new measurements, not the history (docs/sources.md): Welford's
running mean and squared deviations for V, their weighted form (West 1979) for η, and for the
pairs two Pareto frontiers of the points so far. For a new point b > 0 the best partner a > 0
maximises |m| under |f_a − f_b| ≥ vs_min √(σ_a² + σ_b²); above f_b, a larger f_a and a smaller
σ_a are both better, below f_b a smaller f_a and a smaller σ_a; so a best partner is always on
the frontier of (high f, low σ) or of (low f, low σ) - usually a handful of points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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

    Ties in |m| go to the first pair in row order (a, then b). Only points with a positive,
    finite flux and a positive, finite error take part (module docstring).
    """
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(flux_err, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(f) & np.isfinite(e) & (e > 0) & (f > 0))
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


@dataclass
class FluxState:
    """The running statistics of one flux column (`flux_int` or `flux_peak`) of one source."""

    n: int = 0  # points with a finite flux and a positive, finite error
    mean: float = 0.0
    m2: float = 0.0  # Σ (f − mean)²
    w: float = 0.0  # Σ 1/σ²
    wmean: float = 0.0  # Σ f/σ² / Σ 1/σ²
    s: float = 0.0  # Σ (f − wmean)² / σ²
    fmax: float = -math.inf
    fmin: float = math.inf
    hi: list[list[float]] = field(default_factory=list)  # frontier (high f, low σ²): [f, σ²]
    lo: list[list[float]] = field(default_factory=list)  # frontier (low f, low σ²)
    vs: float | None = None  # the best pair's |Vs| and |m|
    m: float | None = None

    def add(self, f: float, e: float, vs_min: float) -> None:
        if not (math.isfinite(f) and math.isfinite(e) and e > 0):
            return
        self.n += 1
        delta = f - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (f - self.mean)
        weight = 1.0 / (e * e)
        self.w += weight
        wdelta = f - self.wmean
        self.wmean += wdelta * weight / self.w
        self.s += weight * wdelta * (f - self.wmean)
        self.fmax, self.fmin = max(self.fmax, f), min(self.fmin, f)
        if f > 0:
            self._pair_with_frontiers(f, e * e, vs_min)
            self.hi = _insert(self.hi, f, e * e, high=True)
            self.lo = _insert(self.lo, f, e * e, high=False)

    def _pair_with_frontiers(self, f: float, var: float, vs_min: float) -> None:
        for fa, va in (*self.hi, *self.lo):
            diff = fa - f
            vs = diff / math.sqrt(va + var)
            if abs(vs) < vs_min:
                continue
            m = abs(2.0 * diff / (fa + f))
            if self.m is None or m > self.m:
                self.vs, self.m = abs(vs), m

    def v(self) -> float | None:
        if self.n < 2 or self.mean == 0.0:
            return None
        return _finite(math.sqrt(max(self.m2, 0.0) / (self.n - 1)) / self.mean)

    def eta(self) -> float | None:
        return _finite(max(self.s, 0.0) / (self.n - 1)) if self.n >= 2 else None

    def to_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["fmax"] = None if self.n == 0 else self.fmax
        out["fmin"] = None if self.n == 0 else self.fmin
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FluxState:
        state = cls(**{**data, "hi": [list(p) for p in data["hi"]],
                       "lo": [list(p) for p in data["lo"]]})  # fmt: skip
        state.fmax = -math.inf if data["fmax"] is None else data["fmax"]
        state.fmin = math.inf if data["fmin"] is None else data["fmin"]
        return state


def _insert(frontier: list[list[float]], f: float, var: float, *, high: bool) -> list[list[float]]:
    """The frontier with (f, var) added: points no other beats on both flux (higher for `high`,
    else lower) and variance (lower). A tie on both keeps the older point."""

    def beats(a: Sequence[float], b: Sequence[float]) -> bool:  # a at least as good as b
        better_f = a[0] >= b[0] if high else a[0] <= b[0]
        return better_f and a[1] <= b[1]

    new = [f, var]
    if any(beats(p, new) for p in frontier):
        return frontier
    return [p for p in frontier if not beats(new, p)] + [new]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


#: The layout of a stored `VariabilityState`: a state of another layout is recomputed.
STATE_FORMAT = 1


@dataclass
class VariabilityState:
    """Everything a source's statistics need, kept up to date one measurement at a time: stored
    as JSON in `sources.state["var"]`. `columns()` gives the `sources` columns."""

    vs_min: float = 4.3
    n_meas: int = 0
    n_meas_forced: int = 0
    first_mjd: float | None = None
    last_mjd: float | None = None
    min_snr: float | None = None
    max_snr: float | None = None
    flux_int: FluxState = field(default_factory=FluxState)
    flux_peak: FluxState = field(default_factory=FluxState)

    def add(self, row: Any) -> None:
        """One measurement (a row with forced, mjd, snr, flux_int(_err), flux_peak(_err))."""
        self.n_meas += 1
        if row.forced:
            self.n_meas_forced += 1
        else:
            if row.mjd is not None:
                self.first_mjd = row.mjd if self.first_mjd is None else min(self.first_mjd, row.mjd)
                self.last_mjd = row.mjd if self.last_mjd is None else max(self.last_mjd, row.mjd)
            if row.snr is not None and math.isfinite(row.snr):
                self.min_snr = row.snr if self.min_snr is None else min(self.min_snr, row.snr)
                self.max_snr = row.snr if self.max_snr is None else max(self.max_snr, row.snr)
        for kind, state in (("int", self.flux_int), ("peak", self.flux_peak)):
            f, e = getattr(row, f"flux_{kind}"), getattr(row, f"flux_{kind}_err")
            if f is not None and e is not None:
                state.add(float(f), float(e), self.vs_min)

    def columns(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n_meas": self.n_meas,
            "n_meas_forced": self.n_meas_forced,
            "first_mjd": self.first_mjd,
            "last_mjd": self.last_mjd,
            "min_snr": self.min_snr,
            "max_snr": self.max_snr,
        }
        for kind, state in (("int", self.flux_int), ("peak", self.flux_peak)):
            has = state.n > 0
            out[f"avg_flux_{kind}"] = state.mean if has else None
            out[f"max_flux_{kind}"] = state.fmax if has else None
            out[f"min_flux_{kind}"] = state.fmin if has else None
            out[f"v_{kind}"] = state.v()
            out[f"eta_{kind}"] = state.eta()
            out[f"vs_abs_significant_max_{kind}"] = state.vs
            out[f"m_abs_significant_max_{kind}"] = state.m
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if not k.startswith("flux_")}
        flux = {"flux_int": self.flux_int.to_dict(), "flux_peak": self.flux_peak.to_dict()}
        return {**out, **flux, "format": STATE_FORMAT}

    @classmethod
    def usable(cls, data: dict[str, Any] | None, vs_min: float) -> bool:
        """Whether a stored state can be continued: this code's format, the same cut."""
        return (
            data is not None
            and data.get("format") == STATE_FORMAT
            and (data.get("vs_min") == vs_min)
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VariabilityState:
        plain = {k: v for k, v in data.items() if not k.startswith("flux_") and k != "format"}
        return cls(**plain, flux_int=FluxState.from_dict(data["flux_int"]),
                   flux_peak=FluxState.from_dict(data["flux_peak"]))  # fmt: skip
