"""Validation of the variability statistics (assets/sources/variability.py) against textbook
computations and a brute-force pair search, and their false-positive and detection rates on
simulated light curves (steady sources with correct Gaussian errors; 50 % modulated sources).

Cuts, as measured here:
- eta: for a steady source with correct errors, (N - 1) eta is chi^2 with N - 1 degrees of
  freedom, so the cut `ETA_CUT` (its 99.9th percentile at N = 20) has a 0.1 % false-positive rate.
- V: the cut `V_CUT` = 0.1, 2 x the 1/SNR scatter of a steady SNR 20 source's V.
- the two-epoch criterion of Mooley et al. (2016) as VAST applies it: |Vs| >= 4.3, |m| >= 0.26
  on the pair `max_significant_pair` returns.
"""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from assets.sources.variability import (
    Pair,
    VariabilityState,
    eta,
    max_significant_pair,
    v_index,
)

N_EPOCHS = 20
SNR = 20.0
ETA_CUT = float(stats.chi2.ppf(0.999, N_EPOCHS - 1) / (N_EPOCHS - 1))  # 2.31
V_CUT = 0.1
VS_MIN, M_MIN = 4.3, 0.26


def _v_textbook(f: np.ndarray) -> float:
    n = f.size
    mean = sum(f) / n
    var = sum((v - mean) ** 2 for v in f) / (n - 1)
    return math.sqrt(var) / mean


def _eta_textbook(f: np.ndarray, e: np.ndarray) -> float:
    n = f.size
    w = [1.0 / (s * s) for s in e]
    mw = sum(w) / n
    mwf = sum(wi * fi for wi, fi in zip(w, f, strict=True)) / n
    mwf2 = sum(wi * fi * fi for wi, fi in zip(w, f, strict=True)) / n
    return n / (n - 1) * (mwf2 - mwf * mwf / mw)


def _eta_chi2(f: np.ndarray, e: np.ndarray) -> float:
    """The same as a reduced chi^2 about the weighted mean: sum w (f - f_w)^2 / (N - 1)."""
    w = 1.0 / e**2
    fw = np.sum(w * f) / np.sum(w)
    return float(np.sum(w * (f - fw) ** 2) / (f.size - 1))


def _brute_pair(
    f: np.ndarray, e: np.ndarray, vs_min: float
) -> tuple[int, int, float, float] | None:
    best = None
    f, e = f.tolist(), e.tolist()  # Python floats: the plain loop is then ~10x faster
    for a, b in itertools.combinations(range(len(f)), 2):
        if not (math.isfinite(f[a]) and math.isfinite(f[b]) and e[a] > 0 and e[b] > 0):
            continue
        if not (math.isfinite(e[a]) and math.isfinite(e[b])) or f[a] <= 0 or f[b] <= 0:
            continue  # pairs of positive fluxes only (assets.sources.variability)
        vs = (f[a] - f[b]) / math.sqrt(e[a] ** 2 + e[b] ** 2)
        m = 2.0 * (f[a] - f[b]) / (f[a] + f[b])
        if abs(vs) >= vs_min and (best is None or abs(m) > abs(best[3])):
            best = (a, b, vs, m)
    return best


@pytest.mark.parametrize("n", [2, 3, 20, 137])
def test_v_and_eta_equal_the_textbook(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(20):
        e = rng.uniform(0.5, 3.0, n)
        f = rng.uniform(5.0, 50.0) + rng.normal(0.0, 1.0, n) * e * rng.uniform(0.5, 5.0)
        assert v_index(f) == pytest.approx(_v_textbook(f), rel=1e-10)
        assert v_index(f) == pytest.approx(np.std(f, ddof=1) / np.mean(f), rel=1e-12)
        assert eta(f, e) == pytest.approx(_eta_textbook(f, e), rel=1e-8)
        assert eta(f, e) == pytest.approx(_eta_chi2(f, e), rel=1e-8)


def test_v_and_eta_undefined_cases() -> None:
    assert math.isnan(v_index(np.array([1.0])))
    assert math.isnan(v_index(np.array([1.0, -1.0])))  # zero mean
    assert math.isnan(eta(np.array([1.0]), np.array([1.0])))
    assert math.isnan(eta(np.array([1.0, 2.0]), np.array([1.0, 0.0])))
    assert math.isnan(eta(np.array([1.0, 2.0]), np.array([1.0, 1.0, 1.0])))
    assert eta(np.full(5, 3.0), np.ones(5)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n", [2, 5, 40, 513, 700, 1100])
def test_max_significant_pair_equals_brute_force(n: int) -> None:
    """Random light curves, short and longer than the block of 512 rows (513 has a last block of
    one row), with some blank points; vs_min low enough that many pairs qualify."""
    rng = np.random.default_rng(1000 + n)
    for trial in range(3 if n > 100 else 30):  # trial 1: blanks, trial 2: a flare
        e = rng.uniform(0.5, 2.0, n)
        f = rng.uniform(5.0, 30.0, n) + rng.normal(0.0, 1.0, n) * e
        if trial % 3 == 1 and n > 3:
            f[rng.integers(0, n, 2)] = np.nan
            e[rng.integers(0, n, 1)] = 0.0
        if trial % 3 == 2:
            f[rng.integers(0, n)] *= 3.0  # a flare: one clear winner
        vs_min = float(rng.uniform(0.5, 5.0))
        got = max_significant_pair(f, e, vs_min)
        want = _brute_pair(f, e, vs_min)
        if want is None:
            assert got is None
            continue
        assert isinstance(got, Pair)
        assert (got.a, got.b) == want[:2]
        assert got.vs == pytest.approx(want[2], rel=1e-12)
        assert got.m == pytest.approx(want[3], rel=1e-12)


def test_max_significant_pair_best_in_a_later_block() -> None:
    """The pair of largest |m| in the second block of rows, and a tie across blocks goes to the
    first pair in row order."""
    n = 1030
    f = np.full(n, 10.0)
    e = np.ones(n)
    f[700], f[900] = 40.0, 5.0  # the pair (700, 900) has m = 1.56
    got = max_significant_pair(f, e)
    assert (got.a, got.b) == (700, 900)
    f[100] = 40.0  # (100, 900) ties with it, and comes first
    got = max_significant_pair(f, e)
    assert (got.a, got.b) == (100, 900)


def test_max_significant_pair_none_when_nothing_is_significant() -> None:
    rng = np.random.default_rng(5)
    f = 10.0 + rng.normal(0.0, 0.1, 50)
    assert max_significant_pair(f, np.ones(50)) is None
    assert max_significant_pair(np.array([1.0]), np.array([1.0])) is None
    assert max_significant_pair(np.array([1.0, np.nan]), np.array([1.0, 1.0])) is None
    assert max_significant_pair(np.array([5.0, -5.0]), np.array([0.1, 0.1])) is None  # m undefined


def _steady(n_src: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Steady sources, SNR log-uniform 10-100 at 1 mJy errors (+-20 % from epoch to epoch), the
    errors correct: flux = truth + err x N(0, 1)."""
    truth = np.exp(rng.uniform(math.log(10.0), math.log(100.0), n_src))[:, None]
    err = rng.uniform(0.8, 1.2, (n_src, N_EPOCHS))
    return truth + err * rng.standard_normal((n_src, N_EPOCHS)), err


def _modulated(n_src: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sinusoidal sources, 50 % modulation f = F (1 + 0.5 sin(2 pi t / P + phi)), F = 20 err,
    periods 3-40 epochs, random phases."""
    t = np.arange(N_EPOCHS)[None, :]
    period = rng.uniform(3.0, 40.0, (n_src, 1))
    phase = rng.uniform(0.0, 2.0 * math.pi, (n_src, 1))
    truth = SNR * (1.0 + 0.5 * np.sin(2.0 * math.pi * t / period + phase))
    err = np.ones((n_src, N_EPOCHS))
    return truth + err * rng.standard_normal(truth.shape), err


def _flags(f: np.ndarray, e: np.ndarray) -> dict[str, np.ndarray]:
    etas = np.array([eta(a, b) for a, b in zip(f, e, strict=True)])
    vs = np.array([v_index(a) for a in f])
    pair = []
    for a, b in zip(f, e, strict=True):
        p = max_significant_pair(a, b, VS_MIN)
        pair.append(p is not None and abs(p.m) >= M_MIN)
    return {"eta": etas >= ETA_CUT, "v": vs >= V_CUT, "pair": np.array(pair), "etas": etas}


def test_steady_false_positive_rates() -> None:
    """10,000 steady sources. Measured: eta >= ETA_CUT 0.07 % (expected 0.1 %), and (N-1) eta
    follows chi^2(N-1); V >= 0.1 2.4 % (all at the faint end: V ~ 1/SNR, 0.1 at SNR 10); the
    two-epoch criterion 0.12 %; eta and V together 0 %. The 99th percentile of eta is 1.92
    (chi^2: 1.90)."""
    f, e = _steady(10_000, np.random.default_rng(11))
    flags = _flags(f, e)
    rate = {k: float(v.mean()) for k, v in flags.items() if k != "etas"}
    # Binomial 3 sigma above the expected 0.1 % for eta (+-0.03 %).
    assert rate["eta"] <= 0.002, rate
    assert stats.kstest(flags["etas"] * (N_EPOCHS - 1), stats.chi2(N_EPOCHS - 1).cdf).pvalue > 1e-3
    assert rate["pair"] <= 0.002, rate
    assert rate["v"] <= 0.03, rate
    assert (flags["eta"] & flags["v"]).mean() <= 0.001, rate


def test_modulated_sources_are_flagged() -> None:
    """1,000 50 %-modulated sources at SNR 20. Measured: all flagged by eta (min 11.4), by V (min 0.13, median 0.36) and by the
    two-epoch criterion; median eta 51.8 (the expected 1 + (0.5 x 20)^2 / 2 = 51 for a whole
    period)."""
    f, e = _modulated(1000, np.random.default_rng(12))
    flags = _flags(f, e)
    for key in ("eta", "v", "pair"):
        assert flags[key].mean() >= 0.99, (key, flags[key].mean())
    # A single alternating source (20 epochs, 1.25 F / 0.75 F: a 50 % peak-to-peak swing).
    rng = np.random.default_rng(13)
    truth = SNR * np.where(np.arange(N_EPOCHS) % 2 == 0, 1.25, 0.75)
    flux = truth + rng.standard_normal(N_EPOCHS)
    err = np.ones(N_EPOCHS)
    assert eta(flux, err) >= ETA_CUT and v_index(flux) >= V_CUT
    pair = max_significant_pair(flux, err)
    assert pair is not None and abs(pair.vs) >= VS_MIN and abs(pair.m) >= M_MIN


def _rows(f: np.ndarray, e: np.ndarray, forced: np.ndarray) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(forced=bool(k), mjd=60000.0 + i, snr=float(a / b), flux_int=float(a),
                        flux_int_err=float(b), flux_peak=float(a * 1.1), flux_peak_err=float(b))
        for i, (a, b, k) in enumerate(zip(f, e, forced, strict=True))
    ]  # fmt: skip


@pytest.mark.parametrize("n", [1, 2, 7, 60, 400])
def test_state_added_in_chunks_equals_the_direct_computation(n: int) -> None:
    """The incremental state, fed in random chunks through a JSON round trip (as the database
    keeps it), gives the same V, η, means, extremes and best pair as the whole light curve at
    once; light curves include negative and blank forced fluxes."""
    rng = np.random.default_rng(77 + n)
    for trial in range(10):
        e = rng.uniform(0.3, 2.0, n)
        f = rng.uniform(-2.0, 30.0, n) + rng.normal(0.0, 1.0, n) * e
        if trial % 2 and n > 3:
            f[rng.integers(0, n)] = np.nan
        forced = rng.random(n) < 0.4
        rows = _rows(f, e, forced)
        vs_min = float(rng.uniform(0.5, 5.0))
        state = VariabilityState(vs_min=vs_min)
        start = 0
        while start < n:
            stop = start + int(rng.integers(1, 5))
            for row in rows[start:stop]:
                state.add(row)
            state = VariabilityState.from_dict(json.loads(json.dumps(state.to_dict())))
            start = stop
        got = state.columns()
        ok = np.isfinite(f)
        fi, ei = f[ok], e[ok]
        assert got["n_meas"] == n and got["n_meas_forced"] == int(forced.sum())
        if fi.size >= 2:
            assert got["v_int"] == pytest.approx(v_index(fi), rel=1e-9)
            assert got["eta_int"] == pytest.approx(eta(fi, ei), rel=1e-9)
            assert got["avg_flux_int"] == pytest.approx(float(fi.mean()), rel=1e-12, abs=1e-12)
            assert got["max_flux_int"] == float(fi.max())
            assert got["min_flux_int"] == float(fi.min())
        pair = max_significant_pair(f, e, vs_min)
        brute = _brute_pair(f, e, vs_min)
        assert (pair is None) == (brute is None) == (got["m_abs_significant_max_int"] is None)
        if pair is not None:
            assert got["m_abs_significant_max_int"] == pytest.approx(abs(pair.m), rel=1e-12)
            assert got["vs_abs_significant_max_int"] == pytest.approx(abs(pair.vs), rel=1e-12)
        blind = ~forced
        snr = (f / e)[blind & ok]
        if blind.any():
            assert got["first_mjd"] == 60000.0 + float(np.flatnonzero(blind)[0])
        if snr.size:
            assert got["max_snr"] == pytest.approx(float(snr.max()))


def test_state_frontiers_stay_small() -> None:
    """A year of a steady source (1,100 points): the pair search keeps a handful of points."""
    rng = np.random.default_rng(5)
    state = VariabilityState()
    for row in _rows(rng.normal(20.0, 0.5, 1100), rng.uniform(0.4, 0.6, 1100),
                     np.zeros(1100, bool)):  # fmt: skip
        state.add(row)
    assert len(state.flux_int.hi) + len(state.flux_int.lo) <= 40
