"""Validation of forced photometry (assets/sources/forced.py) on synthetic planes made as the
project makes them (tests/assets/sources/injection.py: white noise convolved with the beam,
1 mJy/beam, beam 3.5 x 3.0 px at PA 30 deg): bias at known positions, empty positions, joint
fits of close pairs, edge and blank skipping, reduced chi^2 and the error scale.

The data given to `forced_fit` have a zero background by construction and the rms map is the
constant rms the noise was scaled to, so what is measured is the estimator, not a background.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from assets.sources.forced import (
    ForcedConfig,
    correlated_error_factor,
    forced_fit,
    subtract_sources,
)
from tests.assets.sources.injection import BEAM, RMS, add_gaussian, jittered_grid, noise_plane

SHAPE = (1024, 1024)
NOISE_MAP = np.full(SHAPE, RMS)


def _plane_with_sources(seed: int, snr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """961 point sources of peak snr x rms at sub-pixel positions >= 20 px (5.7 beams) apart."""
    rng = np.random.default_rng(20_000 + seed)
    x, y = jittered_grid(SHAPE, pitch=32.0, jitter=6.0, margin=24.0, rng=rng)
    plane = noise_plane(SHAPE, BEAM, RMS, seed=seed)
    if snr:
        add_gaussian(plane, x, y, np.full(x.size, snr * RMS), BEAM)
    return plane, x, y


DEFAULT = ForcedConfig()


def _fits(snr: float, seeds: tuple[int, ...], config: ForcedConfig = DEFAULT):
    flux, err, chi2 = [], [], []
    for seed in seeds:
        plane, x, y = _plane_with_sources(seed, snr)
        res = forced_fit(plane, NOISE_MAP, x, y, BEAM, config)
        assert not res.skipped.any() and (res.n_cluster == 1).all()
        flux.append(res.flux)
        err.append(res.flux_err)
        chi2.append(res.chi_squared)
    return np.concatenate(flux), np.concatenate(err), np.concatenate(chi2)


def test_noiseless_injections_are_recovered_exactly() -> None:
    """The estimator is linear: the fit of a noiseless beam at a sub-pixel position is its peak."""
    rng = np.random.default_rng(1)
    x, y = jittered_grid((256, 256), pitch=32.0, jitter=4.0, margin=24.0, rng=rng)
    peak = rng.uniform(1e-3, 1.0, x.size)
    plane = np.zeros((256, 256))
    add_gaussian(plane, x, y, peak, BEAM, half=40)
    res = forced_fit(plane, np.full(plane.shape, RMS), x, y, BEAM)
    np.testing.assert_allclose(res.flux, peak, rtol=1e-9)
    np.testing.assert_allclose(res.chi_squared, 0.0, atol=1e-9)


def test_mean_of_injections_at_5_sigma_is_unbiased() -> None:
    """1,922 sources at 5 sigma on each of two pairs of planes: the mean within 2 standard errors
    of the truth, and the mean of the two within 1.5 (an unbiased mean misses a 1 standard error
    bound one time in three; see the module's measured values in the report)."""
    biases = []
    for seeds in ((0, 1), (2, 3)):
        flux, err, _ = _fits(5.0, seeds)
        assert flux.size >= 1000
        sem = flux.std(ddof=1) / math.sqrt(flux.size)
        biases.append((flux.mean() - 5.0 * RMS) / sem)
        assert abs(biases[-1]) <= 2.0, biases
    assert abs(np.mean(biases)) * math.sqrt(2.0) <= 1.5, biases
    # VAST's error is the local rms: low by correlated_error_factor(2) = 1.41 here (measured 1.42).
    np.testing.assert_allclose(err, RMS, rtol=1e-12)
    assert flux.std() / err.mean() == pytest.approx(correlated_error_factor(2.0), rel=0.05)


def test_noise_corr_scale_makes_the_errors_match_the_scatter() -> None:
    flux, err, _ = _fits(5.0, (0, 1), ForcedConfig(noise_corr_scale=2.0))
    # Measured: scatter / error 1.01.
    assert flux.std() / err.mean() == pytest.approx(1.0, abs=0.05)


def test_empty_positions_average_to_zero_and_chi2_is_one() -> None:
    """Fits at 1,922 positions of pure noise: the mean is within 2 standard errors of 0 (measured
    -1.10), the reduced chi^2 averages ~1 (measured 0.98, scatter 0.20 from position to
    position, wider than sqrt(2 / 528) because the cutout's pixels are correlated)."""
    flux, _, chi2 = _fits(0.0, (7, 8))
    sem = flux.std(ddof=1) / math.sqrt(flux.size)
    assert abs(flux.mean()) <= 2.0 * sem
    assert np.mean(chi2) == pytest.approx(1.0, abs=0.05)
    assert 0.1 <= np.std(chi2) <= 0.3


def _pairs(
    separation_beams: float, seed: int, f1: float, f2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of point sources `separation_beams` x BMAJ apart at random orientations, peak f1 (the
    first of each pair) and f2, the pairs >= 30 px apart; x, y interleaved (a0, b0, a1, ...)."""
    rng = np.random.default_rng(30_000 + seed)
    cx, cy = jittered_grid(SHAPE, pitch=40.0, jitter=5.0, margin=30.0, rng=rng)
    angle = rng.uniform(0.0, 2.0 * math.pi, cx.size)
    half = 0.5 * separation_beams * BEAM.bmaj_px
    x = np.column_stack([cx - half * np.cos(angle), cx + half * np.cos(angle)]).ravel()
    y = np.column_stack([cy - half * np.sin(angle), cy + half * np.sin(angle)]).ravel()
    truth = np.tile([f1, f2], cx.size)
    plane = noise_plane(SHAPE, BEAM, RMS, seed=seed)
    add_gaussian(plane, x, y, truth, BEAM)
    return plane, x, y, truth


def test_close_pairs_are_fitted_jointly_and_unbiased() -> None:
    """Pairs 1 BMAJ apart (< 1.5), 20 and 10 sigma: joint fits (n_cluster 2) recover both within
    3 standard errors (measured: see the asserts' messages), whereas fitting each alone takes in
    ~a quarter of the neighbour's flux (the kernels' overlap)."""
    plane, x, y, truth = _pairs(1.0, seed=3, f1=20 * RMS, f2=10 * RMS)
    res = forced_fit(plane, NOISE_MAP, x, y, BEAM)
    assert not res.skipped.any()
    assert (res.n_cluster == 2).all()
    resid = res.flux - truth
    for k, name in ((0, "bright"), (1, "faint")):
        r = resid[k::2]
        sem = r.std(ddof=1) / math.sqrt(r.size)
        assert abs(r.mean()) <= 3 * sem, (name, r.mean() / sem)
    # Errors: VAST's error x the blending inflation, times sqrt(2) on this noise.
    z = resid / (res.flux_err * correlated_error_factor(2.0))
    assert z.std() == pytest.approx(1.0, abs=0.1)
    assert (res.flux_err > RMS).all()  # inflated over the isolated error

    naive = forced_fit(plane, NOISE_MAP, x, y, BEAM, ForcedConfig(cluster_threshold=0.0))
    assert (naive.n_cluster == 1).all()
    overlap = _kernel_overlap(x[1::2] - x[0::2], y[1::2] - y[0::2])
    bias_faint = (naive.flux - truth)[1::2]
    # The faint one takes in overlap x 20 sigma (~5 sigma at this separation).
    assert bias_faint.mean() == pytest.approx(np.mean(overlap * 20 * RMS), rel=0.1)
    assert bias_faint.mean() > 10 * bias_faint.std() / math.sqrt(bias_faint.size)


def _kernel_overlap(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Σ K_a K_b / Σ K_a² for beams (dx, dy) apart: exp(-Q(d)/4), Q the beam's quadratic form."""
    return BEAM.gaussian(dx, dy) ** 0.5


def test_pairs_beyond_the_threshold_are_fitted_alone_and_chains_join() -> None:
    plane, x, y, _ = _pairs(1.6, seed=4, f1=10 * RMS, f2=10 * RMS)
    res = forced_fit(plane, NOISE_MAP, x[:200], y[:200], BEAM)
    assert (res.n_cluster == 1).all()
    # A chain of three, each 1.2 BMAJ from the next (the ends 2.4 apart): one cluster of 3.
    xs = 500.0 + np.array([0.0, 1.2, 2.4]) * BEAM.bmaj_px
    res = forced_fit(plane, NOISE_MAP, xs, np.full(3, 500.0), BEAM)
    np.testing.assert_array_equal(res.n_cluster, [3, 3, 3])
    # Coincident positions: a shared, finite flux (the pseudo-inverse), no exception.
    res = forced_fit(plane, NOISE_MAP, [300.2, 300.2], [400.7, 400.7], BEAM)
    np.testing.assert_array_equal(res.n_cluster, [2, 2])
    assert np.isfinite(res.flux).all()
    assert res.flux[0] == pytest.approx(res.flux[1])


def test_positions_near_the_edge_are_skipped_and_counted() -> None:
    plane = noise_plane((256, 256), BEAM, RMS, seed=5)
    noise = np.full(plane.shape, RMS)
    edge = ForcedConfig().edge_beams * BEAM.bmaj_px  # 10.5 px
    x = np.array([edge - 0.1, edge + 0.1, 128.0, 255 - edge + 0.1, 255 - edge - 0.1, -3.0, 300.0,
                  128.0, 128.0, np.nan, 60.0])  # fmt: skip
    y = np.array([128.0, 128.0, edge - 0.1, 128.0, 128.0, 128.0, 128.0, 255 - edge + 0.1, 40.0,
                  128.0, np.inf])  # fmt: skip
    skip = np.array([True, False, True, True, False, True, True, True, False, True, True])
    res = forced_fit(plane, noise, x, y, BEAM)
    np.testing.assert_array_equal(res.skipped, skip)
    assert res.n_skipped_edge == int(skip.sum())  # non-finite positions count as edge
    assert res.n_skipped_blank == 0
    for col in (res.flux, res.flux_err, res.local_rms, res.chi_squared):
        assert np.isnan(col[skip]).all() and np.isfinite(col[~skip]).all()
    np.testing.assert_array_equal(res.n_cluster[skip], 0)
    np.testing.assert_array_equal(res.n_cluster[~skip], 1)


def test_blank_cutouts_are_skipped_counted_and_not_clustered() -> None:
    plane = noise_plane((256, 256), BEAM, RMS, seed=6)
    noise = np.full(plane.shape, RMS)
    plane[100:140, 100:140] = np.nan  # a blank block
    noise[200:210, 30:40] = 0.0  # a zero rms patch
    half = math.ceil(ForcedConfig().nbeam * BEAM.bmaj_px)  # 11 px cutout half-size
    x = np.array([120.0, 100.0 - half, 100.0 - half - 1, 35.0, 35.0, 120.0])
    y = np.array([120.0, 120.0, 120.0, 205.0, 210.0 + half, 140.0 + half + 3])
    # Inside the block, its cutout touching the block's edge, one pixel clear of it; on the zero
    # rms patch, just clear of it; clear of the block below (the next one is 3.4 px from it).
    skip = np.array([True, True, False, True, False, False])
    x = np.append(x, 120.0)
    y = np.append(y, 140.0 + half + 3 - 1.2 * BEAM.bmaj_px)  # 1.2 beams from the last: a pair
    skip = np.append(skip, True)  # ... but its cutout reaches into the block
    res = forced_fit(plane, noise, x, y, BEAM)
    np.testing.assert_array_equal(res.skipped, skip)
    assert res.n_skipped_blank == int(skip.sum())
    assert res.n_skipped_edge == 0
    assert np.isnan(res.flux[skip]).all() and np.isfinite(res.flux[~skip]).all()
    # The skipped neighbour takes no part in a cluster: the last kept position is alone.
    assert res.n_cluster[5] == 1


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        forced_fit(np.zeros((10, 10)), np.zeros((10, 11)), [1.0], [1.0], BEAM)
    with pytest.raises(ValueError):
        forced_fit(np.zeros((10, 10)), np.zeros((10, 10)), [1.0, 2.0], [1.0], BEAM)


def test_detected_neighbours_are_subtracted_before_the_fit() -> None:
    """Empty positions 1 BMAJ from a detected 100 sigma source (its fitted peak and the beam, as
    the extraction gives them): without subtraction the fits read ~overlap x 100 sigma; with it
    their mean is zero within 3 standard errors, and the positions are still fitted alone."""
    rng = np.random.default_rng(44)
    cx, cy = jittered_grid(SHAPE, pitch=48.0, jitter=5.0, margin=30.0, rng=rng)
    angle = rng.uniform(0.0, 2.0 * math.pi, cx.size)
    ex, ey = cx + BEAM.bmaj_px * np.cos(angle), cy + BEAM.bmaj_px * np.sin(angle)
    peak = np.full(cx.size, 100 * RMS)
    plane = noise_plane(SHAPE, BEAM, RMS, seed=45)
    add_gaussian(plane, cx, cy, peak, BEAM)

    naive = forced_fit(plane, NOISE_MAP, ex, ey, BEAM)
    overlap = _kernel_overlap(ex - cx, ey - cy)
    assert naive.flux.mean() == pytest.approx(np.mean(overlap * 100 * RMS), rel=0.1)

    cleaned = plane.copy()
    n = subtract_sources(cleaned, cx, cy, peak, [BEAM] * cx.size, ex, ey, 3.0 * BEAM.bmaj_px)
    assert n == cx.size
    fixed = forced_fit(cleaned, NOISE_MAP, ex, ey, BEAM)
    sem = fixed.flux.std(ddof=1) / math.sqrt(fixed.flux.size)
    assert abs(fixed.flux.mean()) <= 3 * sem
    # Nothing far from a forced position is touched.
    far = plane.copy()
    assert subtract_sources(far, cx, cy, peak, [BEAM] * cx.size, ex + 500, ey, 3.0) == 0
    assert np.array_equal(far, plane)
