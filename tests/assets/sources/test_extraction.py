"""Validation of the blind extraction kernel (assets/sources/extraction.py) by injection and
recovery on synthetic planes made as the project makes them (tests/assets/sources/injection.py:
white noise convolved with the beam, 1 mJy/beam, beam 3.5 x 3.0 px at PA 30 deg, 1024^2).

Statistics, all with fixed seeds:
- completeness per SNR bin (SNR = true peak / the plane's rms), a truth matched to the nearest
  detection within one FWHM major, one to one;
- position error: the radial error in FWHM majors, its rms and 90th percentile, SNR >= 20;
- peak flux: the median of fitted / true peak, SNR >= 20;
- false detections: every detection on pure-noise planes;
- error scatter: the standard deviation of (fit - truth) / error.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from assets.sources.beam import Beam
from assets.sources.extraction import (
    FLAG_BEAM_SHAPE,
    FLAG_BLENDED,
    FLAG_NEAR_EDGE,
    ExtractionConfig,
    PlaneSources,
    extract_plane,
    position_error_factor,
)
from tests.assets.sources.injection import (
    BEAM,
    RMS,
    add_gaussian,
    convolved,
    jittered_grid,
    match,
    noise_plane,
)

SHAPE = (1024, 1024)
SNR_EDGES = np.array([3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 50.0, 200.0])
N_INJECTED_PLANES = 4  # 961 sources each (32 px grid, +-6 px jitter): 480 per SNR bin
N_NOISE_PLANES = 16
#: Bound on the mean number of 5 sigma detections per 1024^2 pure-noise plane. Measured: 0.19
#: (3 in 16 planes). The Euler-characteristic density of a Gaussian field with this correlation
#: (2 x the beam's covariance) gives 0.33 upcrossing regions above 5 sigma per plane.
MAX_FALSE_PER_PLANE = 0.5


class Recovered:
    """Truths of all injected planes and, per truth, the matched row's columns (NaN: missed)."""

    def __init__(self, planes: list[tuple[np.ndarray, np.ndarray, np.ndarray, PlaneSources]]):
        self.x = np.concatenate([p[0] for p in planes])
        self.y = np.concatenate([p[1] for p in planes])
        self.peak = np.concatenate([p[2] for p in planes])
        self.snr = self.peak / RMS
        self.unmatched = []
        cols: dict[str, list[np.ndarray]] = {}
        for x, y, _, found in planes:
            m = match(x, y, found.x, found.y, BEAM.bmaj_px)
            self.unmatched.append(m.unmatched.size)
            j = np.maximum(m.det, 0)
            for name in ("x", "y", "x_err", "y_err", "flux_peak", "flux_peak_err", "flags"):
                value = getattr(found, name)[j].astype(np.float64) if len(found) else j * 0.0
                cols.setdefault(name, []).append(np.where(m.det >= 0, value, np.nan))
        self.cols = {name: np.concatenate(v) for name, v in cols.items()}
        self.found = np.isfinite(self.cols["x"])

    def completeness(self, lo: float, hi: float) -> float:
        sel = (self.snr >= lo) & (self.snr < hi)
        return float(self.found[sel].mean())


def _injected(seed: int, snr_lo: np.ndarray, snr_hi: np.ndarray, corr_scale: float = 2.0):
    rng = np.random.default_rng(10_000 + seed)
    plane = noise_plane(SHAPE, BEAM, RMS, seed=seed, corr_scale=corr_scale)
    x, y = jittered_grid(SHAPE, pitch=32.0, jitter=6.0, margin=24.0, rng=rng)
    k = rng.permutation(np.arange(x.size) % snr_lo.size)
    peak = rng.uniform(snr_lo[k], snr_hi[k]) * RMS
    add_gaussian(plane, x, y, peak, BEAM)
    return x, y, peak, plane.astype(np.float32)


@pytest.fixture(scope="module")
def recovered() -> Recovered:
    planes = []
    for seed in range(N_INJECTED_PLANES):
        x, y, peak, plane = _injected(seed, SNR_EDGES[:-1], SNR_EDGES[1:])
        planes.append((x, y, peak, extract_plane(plane, BEAM)))
    return Recovered(planes)


def test_completeness_by_snr(recovered: Recovered) -> None:
    # Measured (480 per bin): 3-4 9.5 %, 4-5 28.7 %, 5-6 63.1 %, 6-8 92.9 %, >= 8 100 %.
    assert recovered.completeness(5.0, 6.0) >= 0.50
    for lo, hi in zip(SNR_EDGES[5:-1], SNR_EDGES[6:], strict=True):  # noqa: RUF007
        assert recovered.completeness(lo, hi) >= 0.95, (lo, hi)
    assert recovered.completeness(10.0, 1e9) >= 0.95
    # Above 8 sigma nothing is missed, and nothing spurious turns up next to the sources.
    assert recovered.completeness(8.0, 1e9) == 1.0
    assert sum(recovered.unmatched) <= 2


def test_position_error_at_snr_20(recovered: Recovered) -> None:
    sel = (recovered.snr >= 20) & recovered.found
    radial = np.hypot(recovered.cols["x"] - recovered.x, recovered.cols["y"] - recovered.y)
    radial = radial[sel] / BEAM.bmaj_px  # in FWHM majors
    # Measured (960 sources): rms 0.019, median 0.010, 90th percentile 0.032, max 0.095 beam.
    assert sel.sum() >= 900
    assert math.sqrt(np.mean(radial**2)) <= 0.1
    assert np.percentile(radial, 90) <= 0.1
    assert np.percentile(radial, 90) <= 0.05  # the margin actually achieved


def test_peak_flux_at_snr_20(recovered: Recovered) -> None:
    sel = (recovered.snr >= 20) & recovered.found
    ratio = recovered.cols["flux_peak"][sel] / recovered.peak[sel]
    # Measured: median 0.9998, mean 0.9995, scatter 0.024 (mostly the SNR 20-50 sources, 70 %
    # of which are within 3 %).
    assert abs(np.median(ratio) - 1.0) <= 0.03
    assert abs(np.median(ratio) - 1.0) <= 0.005
    # Per source, at SNR >= 50 (the scatter is then ~1/SNR <= 2 %): >= 90 % within 3 % (98.5 %).
    bright = recovered.snr[sel] >= 50
    assert np.mean(np.abs(ratio[bright] - 1.0) <= 0.03) >= 0.9


def test_false_detections_on_pure_noise() -> None:
    counts = []
    for k in range(N_NOISE_PLANES):
        plane = noise_plane(SHAPE, BEAM, RMS, seed=1000 + k).astype(np.float32)
        found = extract_plane(plane, BEAM)
        assert found.n_pixels == plane.size
        assert found.rms_median == pytest.approx(RMS, rel=0.05)
        counts.append(len(found))
    per_plane = float(np.mean(counts))
    # Measured: 3 in 16 planes, 0.19 per plane = 0.18 per Mpixel.
    assert per_plane <= MAX_FALSE_PER_PLANE, counts


@functools.cache
def _error_scatter(corr_scale: float, config: ExtractionConfig) -> tuple[float, float, float]:
    """std of (fit - truth) / error for x, y and peak: 3 planes of 961 sources at SNR 15-40."""
    z = []
    for seed in (300, 301, 302):
        x, y, peak, plane = _injected(seed, np.array([15.0]), np.array([40.0]), corr_scale)
        found = extract_plane(plane, BEAM, config)
        m = match(x, y, found.x, found.y, BEAM.bmaj_px)
        ok = m.det >= 0
        d = m.det[ok]
        assert ok.mean() == 1.0
        z.append(
            np.column_stack(
                [
                    (found.x[d] - x[ok]) / found.x_err[d],
                    (found.y[d] - y[ok]) / found.y_err[d],
                    (found.flux_peak[d] - peak[ok]) / found.flux_peak_err[d],
                ]
            )
        )
    sx, sy, sp = np.concatenate(z).std(axis=0)
    return float(sx), float(sy), float(sp)


#: Least squares with equal weights on noise correlated like a Gaussian of c times the beam's
#: covariance (continuous limit, a point source): sigma(x) = 4 sqrt(c) / (2 + c) x sigma_beam /
#: SNR along each axis (`position_error_factor`), and with the beam fixed sigma(A) =
#: sqrt(4c / (c + 2)) x rms. Condon's (1997) formulas as the kernel applies them (theta_N = the
#: beam) give sigma_beam / SNR and rms.
def _fixed_peak_factor(c: float) -> float:
    return math.sqrt(4.0 * c / (c + 2.0))


RAW_CONDON = ExtractionConfig(noise_correlation=0.0)


@pytest.mark.parametrize("corr_scale", [2.0, 1.0])
def test_condon_errors_under_estimate_as_derived(corr_scale: float) -> None:
    """Peak-flux errors of the free-shape fits are right (scatter / error ~1); Condon's position
    errors and the fixed-beam peak errors under-estimate the scatter by the factors of least
    squares on correlated noise (above), which this measures with the scaling off.

    Measured (2883 sources, SNR 15-40), c = 2 (the project's synthetic noise) / c = 1 (noise
    correlated like the beam): free-shape fits x 1.48 / 1.39, y 1.36 / 1.29 (predicted 1.41 /
    1.33), peak 1.07 / 1.15; fixed-beam fits peak 1.48 / 1.21 (predicted 1.41 / 1.15),
    positions as the free fits."""
    sx, sy, sp = _error_scatter(corr_scale, RAW_CONDON)
    assert 0.9 <= sp <= 1.2
    expected = position_error_factor(corr_scale)
    for s in (sx, sy):
        assert s == pytest.approx(expected, rel=0.08)
    fixed = ExtractionConfig(shape_snr=math.inf, noise_correlation=0.0)
    _, _, sp_fixed = _error_scatter(corr_scale, fixed)
    assert sp_fixed == pytest.approx(_fixed_peak_factor(corr_scale), rel=0.08)


@pytest.mark.parametrize("corr_scale", [1.0, 2.0])
def test_position_error_scatter_is_one(corr_scale: float) -> None:
    """With the scaling for the image's noise correlation (the default c = 1: a CLEANed image),
    position errors match the scatter: measured x 1.04 / y 0.97 at c = 1, 1.05 / 0.96 at c = 2
    (the synthetic noise, c passed)."""
    sx, sy, _ = _error_scatter(corr_scale, ExtractionConfig(noise_correlation=corr_scale))
    assert 0.85 <= sx <= 1.15 and 0.85 <= sy <= 1.15


@pytest.mark.parametrize(("maj", "mnr"), [(4.0, 2.5), (6.0, 3.0)])
def test_resolved_sources_integrated_flux_and_deconvolved_size(maj: float, mnr: float) -> None:
    """Intrinsic Gaussians (FWHM maj x mnr px, random PA) at peak SNR ~35-110 (integrated flux
    0.1-0.2 Jy, so 100-200 x the rms): the fitted integrated flux and the Wild-deconvolved axes
    and PA against the truth. Measured (400 sources, 4 x 2.5 / 6 x 3): integrated flux median
    0.996 / 0.998, 5-95 % 0.96-1.04 / 0.95-1.05; deconvolved major 1.000 / 1.001, minor 0.995 /
    0.998 of the truth; PA median |error| 1.9 / 1.3 deg; flux_int scatter / error 1.10 / 1.03."""
    rng = np.random.default_rng(400)
    plane = noise_plane(SHAPE, BEAM, RMS, seed=500)
    x, y = jittered_grid(SHAPE, pitch=48.0, jitter=8.0, margin=32.0, rng=rng)
    pa = rng.uniform(-90.0, 90.0, x.size)
    s_int = rng.uniform(100.0, 200.0, x.size) * RMS
    for i in range(x.size):
        shape = convolved(BEAM, maj, mnr, pa[i])
        peak = s_int[i] * BEAM.bmaj_px * BEAM.bmin_px / (shape.bmaj_px * shape.bmin_px)
        add_gaussian(plane, x[i : i + 1], y[i : i + 1], np.array([peak]), shape)
    found = extract_plane(plane.astype(np.float32), BEAM)
    m = match(x, y, found.x, found.y, BEAM.bmaj_px)
    assert (m.det >= 0).all()
    d = m.det
    assert not (found.flags[d] & FLAG_BEAM_SHAPE).any()  # every one had its shape fitted
    ratio = found.flux_int[d] / s_int
    assert abs(np.median(ratio) - 1.0) <= 0.01
    assert np.mean(np.abs(ratio - 1.0) <= 0.05) >= 0.9
    assert np.median(found.dc_bmaj_px[d]) == pytest.approx(maj, rel=0.02)
    assert np.median(found.dc_bmin_px[d]) == pytest.approx(mnr, rel=0.02)
    pa_err = (found.dc_pa_deg[d] - pa + 90.0) % 180.0 - 90.0
    assert np.median(np.abs(pa_err)) <= 5.0
    # Their integrated-flux errors: scatter / error ~1.
    z = (found.flux_int[d] - s_int) / found.flux_int_err[d]
    assert 0.85 <= z.std() <= 1.3
    # The point sources of the same plane do not deconvolve: a beam-shaped row reads 0.
    assert (found.dc_bmaj_px[found.flags & FLAG_BEAM_SHAPE > 0] == 0).all()


def test_blank_region_and_edges_are_flagged_and_do_not_crash() -> None:
    shape = (512, 512)
    plane = noise_plane(shape, BEAM, RMS, seed=7)
    blank = (slice(200, 300), slice(150, 260))  # rows, columns
    # Bright sources: interior, on the image edges and corners, and next to the blank region.
    x = np.array([100.3, 0.4, 511.2, 256.6, 300.1, 0.2, 510.8, 205.4, 100.7, 264.2, 400.5])
    y = np.array([100.6, 256.2, 300.7, 0.3, 511.4, 0.6, 510.9, 197.1, 250.2, 250.8, 420.3])
    near = np.array([False, True, True, True, True, True, True, True, False, True, False])
    add_gaussian(plane, x, y, np.full(x.size, 50 * RMS), BEAM)
    add_gaussian(plane, np.array([200.0]), np.array([250.0]), np.array([1.0]), BEAM)  # blanked
    plane[blank] = np.nan
    found = extract_plane(plane.astype(np.float32), BEAM)
    assert found.n_pixels == plane.size - 100 * 110
    for name in ("x", "y", "x_err", "flux_peak", "flux_peak_err", "flux_int", "local_rms", "snr"):
        assert np.isfinite(getattr(found, name)).all(), name
    m = match(x, y, found.x, found.y, BEAM.bmaj_px)
    assert (m.det >= 0).all()
    flagged = (found.flags[m.det] & FLAG_NEAR_EDGE) != 0
    np.testing.assert_array_equal(flagged, near)
    interior = ~near
    np.testing.assert_allclose(found.flux_peak[m.det[interior]], 50 * RMS, rtol=0.1)
    # Nothing is found inside the blank region, and nothing from its edge is spurious.
    inside = (found.x > 150) & (found.x < 259) & (found.y > 200) & (found.y < 299)
    assert not inside.any()
    assert m.unmatched.size <= 1


@pytest.mark.parametrize(
    "plane",
    [
        np.full((128, 128), np.nan, dtype=np.float32),
        np.zeros((128, 128), dtype=np.float32),
        np.zeros((0, 0), dtype=np.float32),
    ],
    ids=["all-nan", "all-zero", "no-pixels"],
)
def test_empty_planes_give_no_rows(plane: np.ndarray) -> None:
    found = extract_plane(plane, BEAM)
    assert len(found) == 0
    assert found.flags.dtype == np.int32
    assert found.n_pixels == int(np.isfinite(plane).sum())


def test_big_endian_input_matches_native() -> None:
    *_, plane = _injected(42, np.array([10.0]), np.array([30.0]))
    plane = plane[:256, :256]
    native = extract_plane(plane, BEAM)
    swapped = extract_plane(plane.astype(">f4"), BEAM)
    assert len(native) > 10
    np.testing.assert_array_equal(native.x, swapped.x)
    np.testing.assert_array_equal(native.flux_peak, swapped.flux_peak)


def test_not_2d_is_an_error() -> None:
    with pytest.raises(ValueError, match="2-D"):
        extract_plane(np.zeros((1, 16, 16), dtype=np.float32), BEAM)


#: A well-sampled beam, as VAST's test epochs have it (15" x 10" on 2" pixels): the summit search
#: needs the fainter peak to be a local maximum of the pixels, which a 3-pixel beam blurs away.
WIDE = Beam(bmaj_px=7.5, bmin_px=5.0, bpa_deg=0.0)


def _pairs_plane(ratio: float, sep_minor: float, seed: int) -> tuple[np.ndarray, ...]:
    """Pairs of point sources (bright at SNR 400, the other `ratio` times fainter) separated by
    `sep_minor` beam minor axes along the minor axis, on a grid over one noise plane."""
    rng = np.random.default_rng(seed)
    plane = noise_plane((768, 768), WIDE, RMS, seed=seed)
    x, y = jittered_grid((768, 768), pitch=96.0, jitter=4.0, margin=64.0, rng=rng)
    pa = math.radians(WIDE.bpa_deg)
    ux, uy = math.cos(pa), math.sin(pa)  # the minor axis (Beam: major along (-sin, cos))
    step = sep_minor * WIDE.bmin_px
    bright = np.full(x.size, 400.0 * RMS)
    x2, y2 = x + step * ux, y + step * uy
    add_gaussian(plane, x, y, bright, WIDE)
    add_gaussian(plane, x2, y2, bright / ratio, WIDE)
    return plane.astype(np.float32), x, y, bright, x2, y2, bright / ratio


@pytest.mark.parametrize(
    ("ratio", "sep_minor", "min_found"), [(2.0, 1.2, 0.85), (3.0, 1.5, 1.0), (2.0, 2.0, 1.0)]
)
def test_close_pairs_are_found_and_fitted_jointly(
    ratio: float, sep_minor: float, min_found: float
) -> None:
    """Close pairs (49 each, the bright one at SNR 400) on a well-sampled beam.

    2:1 at 1.2 beam minor axes (VAST's test epoch 2) is one island to sep (its deblending levels
    are 21 % apart, the saddle within 6 % of the fainter peak): sep alone finds no fainter
    source and fits the pair as one, 14 % low. The summit search finds the fainter one in 44 of
    49 pairs (the rest have no local maximum of their own after the noise). 3:1 at 1.5 and 2:1
    at 2.0 sep splits, but fitted alone each saw the other's wings (bright 0.980, faint 1.010 at
    3:1); fitted jointly, every pair found is within 2 % in peak flux and 0.1 beam in position
    (measured medians 0.993-1.000). Equal pairs at 1.0 minor axes stay one (resolved) component:
    their dip is too shallow for a local maximum of its own (docs/sources.md)."""
    plane, x, y, peak, x2, y2, peak2 = _pairs_plane(ratio, sep_minor, seed=77)
    found = extract_plane(plane, WIDE)
    bright = match(x, y, found.x, found.y, 0.5 * WIDE.bmin_px)
    faint = match(x2, y2, found.x, found.y, 0.5 * WIDE.bmin_px)
    assert (bright.det >= 0).all()
    assert np.mean(faint.det >= 0) >= min_found
    both = (bright.det >= 0) & (faint.det >= 0)
    for m, tx, ty, tp in ((bright, x, y, peak), (faint, x2, y2, peak2)):
        d = m.det[both]
        assert np.all(np.abs(found.flux_peak[d] / tp[both] - 1.0) <= 0.02)
        offset = np.hypot(found.x[d] - tx[both], found.y[d] - ty[both]) / WIDE.bmaj_px
        assert offset.max() <= 0.1
        assert np.all(found.flags[d] & FLAG_BLENDED)
    assert len(found) == x.size + int((faint.det >= 0).sum())  # nothing else
    if ratio == 2.0 and sep_minor == 1.2:
        alone = extract_plane(plane, WIDE, ExtractionConfig(summit_rounds=0))
        assert len(alone) == x.size  # sep alone: one row per pair


def test_no_summits_on_isolated_bright_or_resolved_sources() -> None:
    """The summit search adds nothing where there is one source: bright points (SNR 2000) and
    resolved Gaussians give exactly one row each."""
    rng = np.random.default_rng(5)
    plane = noise_plane((768, 768), WIDE, RMS, seed=9)
    x, y = jittered_grid((768, 768), pitch=96.0, jitter=6.0, margin=64.0, rng=rng)
    half = x.size // 2
    add_gaussian(plane, x[:half], y[:half], np.full(half, 2000.0 * RMS), WIDE)
    shape = convolved(WIDE, 12.0, 6.0, 30.0)
    add_gaussian(plane, x[half:], y[half:], np.full(x.size - half, 300.0 * RMS), shape)
    found = extract_plane(plane.astype(np.float32), WIDE)
    assert len(found) == x.size
    assert not (found.flags & FLAG_BLENDED).any()
