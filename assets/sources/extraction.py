"""Blind source extraction of one image plane: sep detection, then batched Gaussian fits.

Why this shape (docs/source-finder.md, bench/finder_survey.py): sep is the only finder inside the
per-image time budget, and as complete as Aegean; its brightest-pixel peak is ~3 % low on a
3 px beam, which a small least-squares fit of the beam fixes. So:

1. `sep.Background` gives the background and rms maps (box `box_px`, filter `filter_px`).
2. `sep.extract` on the background-subtracted plane with a peak-pixel threshold
   (`minarea=1`, no matched filter: sep's filter assumes white noise, ours is beam-correlated),
   deblending on so that close pairs become two rows.
3. A fixed-beam fit (amplitude, x, y) of every detection at once: a batched, weighted
   Levenberg-Marquardt on a cutout around the brightest pixel, pixels of other detections and
   blank pixels given zero weight.
4. For detections with SNR >= `shape_snr`, a free-shape fit (amplitude, x, y and the three
   terms of the inverse covariance) started from 3.; a shape it cannot constrain or that is
   implausible falls back to the beam (flagged).
5. Errors per Condon (1997) with the correlated-noise form of Condon et al. (1998, eq. 26),
   as PyBDSF computes them, the position errors scaled by `position_error_factor` (below);
   deconvolution as Wild (1970), done on the covariance matrices.

Nothing here holds state between calls and sep releases the GIL, so planes can be extracted from
several threads at once. The pixel and PA conventions are those of `assets.sources.beam`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sep

from assets.sources.beam import FWHM_TO_SIGMA, Beam

# --- flag bits (PlaneSources.flags) -------------------------------------------------------------
#: The fit did not converge (its last Gauss-Newton step was still > 0.1 sigma of a parameter), or
#: could not run (too few usable pixels, a non-finite result, a position that ran away): the row
#: then carries the best estimate it has (the fixed-beam fit, or sep's brightest pixel).
FLAG_NOT_CONVERGED = 1
#: The fit cutout reaches past the image edge or over blank (NaN) pixels.
FLAG_NEAR_EDGE = 2
#: Blended: sep's deblending split the island, or the summit search found a peak sep missed;
#: this row is one of several components, fitted with its neighbours' models subtracted (their
#: pixels, where sep split them, are also left out of its fit).
FLAG_BLENDED = 4
#: The shape is the beam's, not fitted (SNR below `shape_snr`, or the free fit was rejected).
FLAG_BEAM_SHAPE = 8
#: A free-shape fit was tried and rejected (did not converge, or gave an axis below
#: `min_axis_fraction` of the beam's or above the cutout): the shape is the beam's.
FLAG_SHAPE_REJECTED = 16
#: An output had to be clipped to stay finite (a zero or non-finite rms, a zero-size error).
FLAG_CLIPPED = 32

_N_PAR = 6  # amplitude, x0, y0, a, b, c with Q = a dx^2 + 2 b dx dy + c dy^2


@dataclass(frozen=True)
class ExtractionConfig:
    """Settings of `extract_plane`; the defaults are the ones the bench measured."""

    threshold_sigma: float = 5.0  # detection: peak pixel >= threshold x local rms
    box_px: int = 64  # sep.Background bw = bh
    filter_px: int = 3  # sep.Background fw = fh
    deblend_nthresh: int = 32  # sep's deblending levels
    deblend_cont: float = 0.005  # sep's minimum contrast of a deblended component
    fit_half_px: int | None = None  # fixed-beam fit cutout half-size; None: ceil(1.5 bmaj)
    shape_half_px: int | None = None  # free-shape fit cutout half-size; None: ceil(2 bmaj)
    fit_iterations: int = 8  # Levenberg-Marquardt iterations of the fixed-beam fit
    shape_iterations: int = 15  # and of the free-shape fit
    shape_snr: float = 10.0  # free-shape fit at fitted SNR >= this
    min_axis_fraction: float = 0.5  # reject a fitted FWHM axis below this x the beam's minor
    converged_step_sigma: float = 0.1  # converged: last GN step <= this x each parameter's error
    #: Rounds of the joint refit of the peaks sep's deblending missed (`_summits`); 0: none.
    summit_rounds: int = 5
    #: The noise's correlation as a multiple c of the beam's covariance: 1 for a CLEANed image,
    #: whose noise is correlated like the (dirty, ~restoring) beam. Position errors are scaled
    #: by `position_error_factor(c)`; 0 turns the scaling off (Condon's errors as they are).
    noise_correlation: float = 1.0


def position_error_factor(c: float) -> float:
    """4 sqrt(c) / (2 + c): how much Condon's (1997) position errors, as the fits apply them,
    under-estimate the scatter of an equal-weight least-squares position on noise correlated
    like a Gaussian of c times the beam's covariance (continuous limit, a point source).

    Derived for the fits here and measured on synthetic planes (tests/assets/sources/
    test_extraction.py, 2,883 sources at SNR 15-40): scatter / Condon error 1.39 (x) and 1.29
    (y) at c = 1, against 4/3 predicted; 1.48 and 1.36 at c = 2, against 1.41. 1 when c <= 0.
    """
    return 4.0 * math.sqrt(c) / (2.0 + c) if c > 0 else 1.0


@dataclass
class PlaneSources:
    """One row per detection (equal-length numpy arrays), pixel domain: 0-based x = column,
    y = row; sizes are FWHM in pixels; PA in degrees east of north (`Beam`), in [-90, 90)."""

    x: np.ndarray
    y: np.ndarray
    x_err: np.ndarray
    y_err: np.ndarray
    flux_peak: np.ndarray  # Jy/beam, fitted
    flux_peak_err: np.ndarray
    flux_int: np.ndarray  # Jy
    flux_int_err: np.ndarray
    local_rms: np.ndarray  # Jy/beam, rms map at the source
    background: np.ndarray  # Jy/beam, background map at the source
    bmaj_px: np.ndarray
    bmin_px: np.ndarray
    pa_deg: np.ndarray
    dc_bmaj_px: np.ndarray  # deconvolved; 0 where unresolved
    dc_bmin_px: np.ndarray
    dc_pa_deg: np.ndarray
    snr: np.ndarray  # flux_peak / local_rms
    flags: np.ndarray  # int32 bitmask of the FLAG_* constants
    rms_median: float = 0.0  # Jy/beam, median of the rms map over the unblanked pixels
    n_pixels: int = 0  # unblanked (finite) pixels of the plane: the searched area

    def __len__(self) -> int:
        return int(self.x.size)

    @classmethod
    def empty(cls, rms_median: float = 0.0, n_pixels: int = 0) -> PlaneSources:
        f = np.zeros(0, dtype=np.float64)
        cols = {name: f.copy() for name in _FLOAT_COLUMNS}
        return cls(**cols, flags=np.zeros(0, dtype=np.int32), rms_median=rms_median,
                   n_pixels=n_pixels)  # fmt: skip


_FLOAT_COLUMNS = (
    "x", "y", "x_err", "y_err", "flux_peak", "flux_peak_err", "flux_int", "flux_int_err",
    "local_rms", "background", "bmaj_px", "bmin_px", "pa_deg", "dc_bmaj_px", "dc_bmin_px",
    "dc_pa_deg", "snr",
)  # fmt: skip


def extract_plane(
    plane: np.ndarray, beam: Beam, config: ExtractionConfig = ExtractionConfig()
) -> PlaneSources:
    """Detect and fit the sources of one 2-D plane (Jy/beam; NaN = blank) with the given beam."""
    if plane.ndim != 2:
        raise ValueError(f"extract_plane wants a 2-D plane, got shape {plane.shape}")
    maps = background_maps(plane, config.box_px, config.filter_px)
    if maps is None:
        return PlaneSources.empty()
    sub, back, finite, mask, n_pixels = maps.sub, maps.back, maps.finite, maps.mask, maps.n_pixels
    rms_median, rms = _sane_rms(maps.rms, finite)
    if not rms_median > 0.0:
        return PlaneSources.empty(n_pixels=n_pixels)
    objs, segmap = sep.extract(
        sub, config.threshold_sigma, err=rms, mask=mask, minarea=1, filter_kernel=None,
        deblend_nthresh=config.deblend_nthresh, deblend_cont=config.deblend_cont,
        segmentation_map=True,
    )  # fmt: skip
    if len(objs) == 0:
        return PlaneSources.empty(rms_median, n_pixels)
    return _measure(sub, rms, back, finite, segmap, objs, beam, config, rms_median, n_pixels)


@dataclass
class BackgroundMaps:
    """sep's background and rms maps of a plane, and the plane with the background taken off."""

    sub: np.ndarray  # float32, background-subtracted; blank (non-finite) pixels 0
    back: np.ndarray
    rms: np.ndarray  # as sep gives it (zero or non-finite values possible: `_sane_rms`)
    finite: np.ndarray  # bool: the plane's finite pixels
    mask: np.ndarray | None  # ~finite, or None when every pixel is finite
    n_pixels: int  # finite pixels


#: Background and rms are estimated on every BACKGROUND_STEP-th pixel of every such row (planes
#: at least 4 boxes on a side): sep.Background was a third of a 1024² extraction.
BACKGROUND_STEP = 2


def background_maps(plane: np.ndarray, box_px: int, filter_px: int) -> BackgroundMaps | None:
    """`sep.Background` of a plane (box `box_px`, filter `filter_px`; blank pixels masked), or
    None when no pixel is finite: what extraction and forced photometry both start from. The
    input is never written to."""
    # sep wants C-contiguous, native-endian float32; a copy when it is not already that.
    data = np.ascontiguousarray(plane, dtype=np.float32)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    finite = np.isfinite(data)
    n_pixels = int(np.count_nonzero(finite))
    if n_pixels == 0:
        return None
    mask = None
    if n_pixels < data.size:
        mask = ~finite
        data = np.where(finite, data, np.float32(0.0))
    step = BACKGROUND_STEP if min(data.shape) >= 4 * box_px else 1
    if step > 1:
        # The box statistics from every other pixel of every other row, the maps brought back
        # to full size by repetition (docs/performance.md, "Sources"): the noise is correlated
        # over the beam, so the sample holds nearly as much information, at a third of the cost.
        small = np.ascontiguousarray(data[::step, ::step])
        small_mask = None if mask is None else np.ascontiguousarray(mask[::step, ::step])
        box, ny, nx = max(1, box_px // step), *data.shape
        bkg = sep.Background(small, mask=small_mask, bw=box, bh=box, fw=filter_px, fh=filter_px)
        back = _upsample(bkg.back(), step, ny, nx)
        rms = _upsample(bkg.rms(), step, ny, nx)
    else:
        bkg = sep.Background(data, mask=mask, bw=box_px, bh=box_px, fw=filter_px, fh=filter_px)
        back, rms = bkg.back(), bkg.rms()
    sub = data - back
    if mask is not None:
        sub[mask] = 0.0
    return BackgroundMaps(sub, back, rms, finite, mask, n_pixels)


def _upsample(values: np.ndarray, step: int, ny: int, nx: int) -> np.ndarray:
    """A map of the subsampled grid at full size: each value repeated step x step, cropped."""
    out = np.empty((ny, nx), dtype=values.dtype)
    for dy in range(step):  # strided copies: 0.3 ms at 1024², np.repeat twice 0.9 ms
        for dx in range(step):
            part = out[dy::step, dx::step]
            part[...] = values[: part.shape[0], : part.shape[1]]
    return out


def _sane_rms(rms: np.ndarray, finite: np.ndarray) -> tuple[float, np.ndarray]:
    """The median rms (on a 1-in-16 pixel sample: the map is smooth on the box scale, and a full
    median costs more than the fits), and the map with zero or non-finite values replaced by a
    huge one, so that sep's threshold there is never reached."""
    step = 4 if min(rms.shape) >= 64 else 1
    sample = rms[::step, ::step][finite[::step, ::step]]
    sample = sample[np.isfinite(sample) & (sample > 0)]
    if sample.size == 0:
        return 0.0, rms
    median = float(np.median(sample))
    bad = ~(rms > 0) | ~np.isfinite(rms)
    if bad.any():
        rms = np.where(bad, np.float32(median * 1e6), rms)
    return median, rms


@dataclass
class _Cutouts:
    """Pixels around each detection: coordinates, data and fit weights, shape (n, m)."""

    gx: np.ndarray
    gy: np.ndarray
    data: np.ndarray
    weight: np.ndarray
    edge: np.ndarray  # (n,) bool: the cutout leaves the image or touches blank pixels


def _cutouts(
    sub: np.ndarray,
    rms: np.ndarray,
    finite: np.ndarray,
    segmap: np.ndarray,
    ix: np.ndarray,
    iy: np.ndarray,
    half: int,
) -> _Cutouts:
    """Square cutouts of side 2 half + 1 centred on (ix, iy); out-of-image, blank and other
    detections' pixels get weight 0, the rest 1 / rms^2."""
    ny, nx = sub.shape
    off = np.arange(-half, half + 1)
    gy = np.broadcast_to(iy[:, None, None] + off[None, :, None], (ix.size, off.size, off.size))
    gx = np.broadcast_to(ix[:, None, None] + off[None, None, :], (ix.size, off.size, off.size))
    gx = gx.reshape(ix.size, -1)
    gy = gy.reshape(ix.size, -1)
    inside = (gx >= 0) & (gx < nx) & (gy >= 0) & (gy < ny)
    cx = np.clip(gx, 0, nx - 1)
    cy = np.clip(gy, 0, ny - 1)
    good = inside & finite[cy, cx]
    edge = ~good.all(axis=1)
    own = segmap[iy, ix]
    seg = segmap[cy, cx]
    good &= (seg == 0) | (seg == own[:, None])
    r = rms[cy, cx].astype(np.float64)
    weight = np.where(good, 1.0 / (r * r), 0.0)
    data = np.where(good, sub[cy, cx], 0.0).astype(np.float64)
    return _Cutouts(gx.astype(np.float64), gy.astype(np.float64), data, weight, edge)


def _beam_abc(beam: Beam) -> tuple[float, float, float]:
    """The beam as Q = a dx^2 + 2 b dx dy + c dy^2 (sigma units): Beam.gaussian = exp(-Q/2)."""
    pa = math.radians(beam.bpa_deg)
    s, c = math.sin(pa), math.cos(pa)
    smaj2, smin2 = beam.sigma_major_px**2, beam.sigma_minor_px**2
    return (
        s * s / smaj2 + c * c / smin2,
        s * c * (1.0 / smin2 - 1.0 / smaj2),
        c * c / smaj2 + (s * s / smin2),
    )


def _shape_of(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    """(a, b, c) of Q -> FWHM major, minor (px) and PA (deg, [-90, 90)); non-PD gives NaN."""
    det = a * c - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        cxx, cyy, cxy = c / det, a / det, -b / det  # the covariance matrix (sigma^2)
        return _axes(cxx, cyy, cxy, scale=1.0 / FWHM_TO_SIGMA)


def _axes(
    cxx: np.ndarray, cyy: np.ndarray, cxy: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigen-decomposition of symmetric 2x2 covariance matrices: sqrt of the eigenvalues (x
    scale; negative eigenvalues give 0) and the PA of the major axis in the Beam convention."""
    mean = 0.5 * (cxx + cyy)
    rad = np.hypot(0.5 * (cxx - cyy), cxy)
    lmaj, lmin = mean + rad, mean - rad
    theta = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)  # major axis angle from +x
    pa = np.degrees(theta) % 180.0 - 90.0  # major axis (-sin pa, cos pa); pa in [-90, 90)
    with np.errstate(invalid="ignore"):
        maj = np.sqrt(np.clip(lmaj, 0.0, None)) * scale
        mnr = np.sqrt(np.clip(lmin, 0.0, None)) * scale
    return maj, mnr, pa


def _model(p: np.ndarray, cut: _Cutouts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Gaussian of parameters p (n, 6) on the cutouts: (exp(-Q/2), dx, dy)."""
    dx = cut.gx - p[:, 1:2]
    dy = cut.gy - p[:, 2:3]
    q = p[:, 3:4] * dx * dx + 2.0 * p[:, 4:5] * dx * dy + p[:, 5:6] * dy * dy
    return np.exp(-0.5 * np.clip(q, 0.0, 700.0)), dx, dy


def _jacobian(
    p: np.ndarray, e: np.ndarray, dx: np.ndarray, dy: np.ndarray, free: slice
) -> np.ndarray:
    """d model / d p for the free parameters, shape (n, m, k)."""
    m = p[:, 0:1] * e
    cols = [
        e,
        m * (p[:, 3:4] * dx + p[:, 4:5] * dy),
        m * (p[:, 4:5] * dx + p[:, 5:6] * dy),
        -0.5 * m * dx * dx,
        -m * dx * dy,
        -0.5 * m * dy * dy,
    ]
    return np.stack(cols[free], axis=-1)


def _fit(
    p0: np.ndarray, cut: _Cutouts, n_free: int, n_iter: int, step_sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted Levenberg-Marquardt for all cutouts at once, the first `n_free` parameters free.

    Returns the parameters, `converged` (the final Gauss-Newton step is within `step_sigma` of
    every free parameter's formal error) and `ok` (finite, positive amplitude, positive-definite
    shape). A Marquardt damping (lambda x diag) keeps each step scale-free and the solve regular
    where a parameter is unconstrained (a round source's PA): no singular matrix, no exception.
    """
    free = slice(0, n_free)
    p = p0.copy()
    w = cut.weight
    e, dx, dy = _model(p, cut)
    res = cut.data - p[:, 0:1] * e
    chi2 = np.einsum("nm,nm->n", w, res * res)
    lam = np.full(p.shape[0], 1e-3)
    eye = np.eye(n_free)
    dof = np.maximum(np.count_nonzero(w, axis=1) - n_free, 1)
    for _ in range(n_iter):
        jac = _jacobian(p, e, dx, dy, free)
        normal, rhs = _normal_equations(jac, w, res)
        diag = np.einsum("nii->ni", normal)
        damped = (
            normal
            + (lam[:, None] * diag + 1e-12 * (diag.sum(1, keepdims=True) + 1e-300))[:, :, None]
            * eye
        )
        step = np.linalg.solve(damped, rhs[..., None])[..., 0]
        trial = p.copy()
        trial[:, free] += step
        trial[:, 1:3] = p[:, 1:3] + np.clip(trial[:, 1:3] - p[:, 1:3], -1.0, 1.0)
        te, tdx, tdy = _model(trial, cut)
        tres = cut.data - trial[:, 0:1] * te
        tchi2 = np.einsum("nm,nm->n", w, tres * tres)
        better = (tchi2 <= chi2) & _valid(trial)
        p[better] = trial[better]
        e[better], dx[better], dy[better], res[better] = (
            te[better],
            tdx[better],
            tdy[better],
            (tres[better]),
        )
        chi2 = np.where(better, tchi2, chi2)
        lam = np.clip(np.where(better, lam * 0.1, lam * 10.0), 1e-7, 1e7)
        # Every row's last step was a hundredth of its errors (diagonal estimate): the rest of
        # the iterations would not move anything the convergence test below could see.
        with np.errstate(divide="ignore", invalid="ignore"):
            z_step = np.abs(step) * np.sqrt(diag / (chi2 / dof)[:, None])
        if np.all(z_step <= 0.1 * step_sigma):
            break
    # Convergence: one undamped Gauss-Newton step from the end point, in units of the errors.
    jac = _jacobian(p, e, dx, dy, free)
    normal, rhs = _normal_equations(jac, w, res)
    diag = np.einsum("nii->ni", normal)
    regular = normal + (1e-9 * diag + 1e-300)[:, :, None] * eye
    step = np.linalg.solve(regular, rhs[..., None])[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        cov_diag = np.einsum("nii->ni", np.linalg.inv(regular))
        scale = chi2 / dof
        z = np.abs(step) / np.sqrt(cov_diag * scale[:, None])
    converged = np.all(z <= step_sigma, axis=1) & np.isfinite(z).all(axis=1)
    ok = _valid(p) & np.isfinite(chi2)
    return p, converged, ok


def _normal_equations(
    jac: np.ndarray, w: np.ndarray, res: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """JᵀWJ (n, k, k) and JᵀWr (n, k) of every cutout: batched matmul (BLAS), 4x faster here
    than the equivalent einsum, which does not use BLAS for these subscripts."""
    wjt = (jac * w[:, :, None]).transpose(0, 2, 1)
    return wjt @ jac, (wjt @ res[:, :, None])[:, :, 0]


def _valid(p: np.ndarray) -> np.ndarray:
    """Finite parameters, positive amplitude, positive-definite inverse covariance."""
    return (
        np.isfinite(p).all(axis=1)
        & (p[:, 0] > 0)
        & (p[:, 3] > 0)
        & (p[:, 5] > 0)
        & (p[:, 3] * p[:, 5] - p[:, 4] ** 2 > 0)
    )


@dataclass
class _Plane:
    """What every fit pass of one plane reads."""

    sub: np.ndarray
    rms: np.ndarray
    finite: np.ndarray
    segmap: np.ndarray
    beam: Beam
    config: ExtractionConfig

    @property
    def half(self) -> int:
        return self.config.fit_half_px or max(2, math.ceil(1.5 * self.beam.bmaj_px))

    @property
    def shape_half(self) -> int:
        return self.config.shape_half_px or max(self.half, math.ceil(2.0 * self.beam.bmaj_px))


def _neighbours_on(cut: _Cutouts, rows: np.ndarray, p: np.ndarray, pairs: np.ndarray) -> None:
    """Subtract from the cutouts (in place) the fitted models of each row's neighbours.

    `rows[k]` is the detection of cutout k; `pairs` (m, 2) holds (detection, neighbour) pairs.
    Each neighbour's Gaussian (its fitted shape, or the beam) is evaluated on the pixels of the
    detection's cutout, so that the detection is fitted on the data less its neighbours: one
    round of a block Gauss-Seidel solution of the joint fit.
    """
    where = {int(d): k for k, d in enumerate(rows)}
    ks = np.array([where[int(d)] for d in pairs[:, 0] if int(d) in where], dtype=np.int64)
    js = np.array([j for d, j in pairs if int(d) in where], dtype=np.int64)
    if ks.size == 0:
        return
    q = p[js]
    dx = cut.gx[ks] - q[:, 1:2]
    dy = cut.gy[ks] - q[:, 2:3]
    quad = q[:, 3:4] * dx * dx + 2.0 * q[:, 4:5] * dx * dy + q[:, 5:6] * dy * dy
    np.add.at(cut.data, ks, -q[:, 0:1] * np.exp(-0.5 * np.clip(quad, 0.0, 700.0)))


def _fit_pass(
    plane: _Plane,
    rows: np.ndarray,
    ix: np.ndarray,
    iy: np.ndarray,
    start: np.ndarray,
    flags: np.ndarray,
    *,
    p_all: np.ndarray | None = None,
    pairs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-beam then free-shape fits of the detections `rows` (their peak pixels ix, iy and
    starting parameters); with `pairs`, each on the data less its neighbours' models in `p_all`.
    Returns (parameters, shaped); flags are set in place."""
    config, beam = plane.config, plane.beam
    n = rows.size
    half = plane.half
    cut = _cutouts(plane.sub, plane.rms, plane.finite, plane.segmap, ix, iy, half)
    if pairs is not None and p_all is not None:
        _neighbours_on(cut, rows, p_all, pairs)
    p, conv, ok = _fit(start, cut, 3, config.fit_iterations, config.converged_step_sigma)
    ran_away = (np.abs(p[:, 1] - ix) > 0.5 * half) | (np.abs(p[:, 2] - iy) > 0.5 * half)
    bad = ~ok | ran_away | (np.count_nonzero(cut.weight, axis=1) < 6)
    p[bad] = start[bad]
    flags[rows[bad | ~conv]] |= FLAG_NOT_CONVERGED
    flags[rows[cut.edge]] |= FLAG_NEAR_EDGE

    local = _at(plane.rms, p[:, 1], p[:, 2]).astype(np.float64)
    snr_fixed = p[:, 0] / local

    # 2. free shape where the SNR can constrain it.
    shaped = np.zeros(n, dtype=bool)
    want = (snr_fixed >= config.shape_snr) & ~bad
    if want.any():
        shalf = plane.shape_half
        idx = np.flatnonzero(want)
        scut = _cutouts(plane.sub, plane.rms, plane.finite, plane.segmap, ix[idx], iy[idx], shalf)
        if pairs is not None and p_all is not None:
            _neighbours_on(scut, rows[idx], p_all, pairs)
        q, sconv, sok = _fit(p[idx], scut, _N_PAR, config.shape_iterations,
                             config.converged_step_sigma)  # fmt: skip
        smaj, smin, _ = _shape_of(q[:, 3], q[:, 4], q[:, 5])
        plausible = (
            sok
            & sconv
            & (smin >= config.min_axis_fraction * beam.bmin_px)
            & (smaj <= 2.0 * shalf)
            & (np.hypot(q[:, 1] - p[idx, 1], q[:, 2] - p[idx, 2]) <= beam.bmaj_px)
            & (np.count_nonzero(scut.weight, axis=1) >= 3 * _N_PAR)
        )
        keep = idx[plausible]
        p[keep] = q[plausible]
        shaped[keep] = True
        flags[rows[idx[~plausible]]] |= FLAG_SHAPE_REJECTED
        flags[rows[idx[scut.edge]]] |= FLAG_NEAR_EDGE
    return p, shaped


def _summits(plane: _Plane, p: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Peaks sep's deblending left inside an island: (k, 3) rows of (x, y, value).

    Multi-threshold deblending splits an island only where one of its levels falls between a
    saddle and the fainter peak; a 2:1 pair 1.2 beam minor axes apart has a saddle within 6 % of
    the fainter peak, and 32 levels from 5 sigma to 2 Jy are 21 % apart (VAST's test epoch 2;
    docs/sources.md, "Real data"). A summit is a pixel of the detection's own island, around
    its fit, that is a local maximum of the data (3 x 3), at least `threshold_sigma` x the rms
    above the background both in the data and in the residual of the fits, and at least half
    a beam minor axis from every fitted position. The residual condition rejects the noise
    bumps on a bright source's flanks; the data condition the residuals of a shape that is not
    quite Gaussian (there is no local maximum there).
    """
    config, beam = plane.config, plane.beam
    half = plane.shape_half
    side = 2 * half + 1
    cut = _cutouts(plane.sub, plane.rms, plane.finite, plane.segmap, ix, iy, half)
    own = cut.weight > 0
    model = np.zeros_like(cut.data)
    for j in range(p.shape[0]):  # every fit's Gaussian on every cutout near it
        near = np.flatnonzero(
            (np.abs(ix - p[j, 1]) <= half + 3 * beam.bmaj_px)
            & (np.abs(iy - p[j, 2]) <= half + 3 * beam.bmaj_px)
        )
        dx = cut.gx[near] - p[j, 1]
        dy = cut.gy[near] - p[j, 2]
        quad = p[j, 3] * dx * dx + 2.0 * p[j, 4] * dx * dy + p[j, 5] * dy * dy
        model[near] += p[j, 0] * np.exp(-0.5 * np.clip(quad, 0.0, 700.0))
    sigma = np.where(own, 1.0 / np.sqrt(np.where(own, cut.weight, 1.0)), np.inf)
    data = np.where(own, cut.data, -np.inf).reshape(-1, side, side)
    padded = np.pad(data, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    local_max = np.ones_like(data, dtype=bool)
    for dy_ in (-1, 0, 1):
        for dx_ in (-1, 0, 1):
            if dy_ or dx_:
                shifted = padded[:, 1 + dy_ : 1 + dy_ + side, 1 + dx_ : 1 + dx_ + side]
                local_max &= data > shifted
    level = config.threshold_sigma * sigma
    candidate = (
        local_max.reshape(cut.data.shape) & (cut.data >= level) & (cut.data - model >= level)
    )
    if not candidate.any():
        return np.empty((0, 3))
    k, m = np.nonzero(candidate)
    xs, ys = cut.gx[k, m], cut.gy[k, m]
    far = np.ones(xs.size, dtype=bool)
    for j in range(p.shape[0]):
        far &= np.hypot(xs - p[j, 1], ys - p[j, 2]) >= 0.5 * beam.bmin_px
    found = {(int(x), int(y)): float(v) for x, y, v in zip(xs[far], ys[far], cut.data[k, m][far],
                                                           strict=True)}  # fmt: skip
    return np.array([(x, y, v) for (x, y), v in sorted(found.items())]).reshape(-1, 3)


def _blend_groups(
    p: np.ndarray, n_sep: int, flags: np.ndarray, reach: float
) -> tuple[np.ndarray, np.ndarray]:
    """(the detections to refit jointly, their (detection, neighbour) pairs): pairs closer than
    `reach` of which one is a summit (index >= `n_sep`) or was split from an island by sep."""
    from scipy.spatial import cKDTree

    n = p.shape[0]
    seed = (np.arange(n) >= n_sep) | ((flags & FLAG_BLENDED) != 0)
    if n < 2 or not seed.any():
        return np.empty(0, dtype=np.int64), np.empty((0, 2), dtype=np.int64)
    close = cKDTree(p[:, 1:3]).query_pairs(reach, output_type="ndarray")
    close = close[seed[close[:, 0]] | seed[close[:, 1]]]
    pairs = np.vstack([close, close[:, ::-1]]).astype(np.int64)
    return np.unique(pairs[:, 0]), pairs


def _colours(group: np.ndarray, pairs: np.ndarray) -> list[np.ndarray]:
    """The group split greedily into sets without a pair inside any set."""
    neighbours: dict[int, set[int]] = {int(i): set() for i in group}
    for i, j in pairs:
        neighbours[int(i)].add(int(j))
    colour: dict[int, int] = {}
    for i in (int(v) for v in group):
        taken = {colour[j] for j in neighbours[i] if j in colour}
        colour[i] = next(c for c in range(len(taken) + 1) if c not in taken)
    return [
        np.array(sorted(i for i, c in colour.items() if c == k), dtype=np.int64)
        for k in range(max(colour.values()) + 1)
    ]


def _measure(
    sub: np.ndarray,
    rms: np.ndarray,
    back: np.ndarray,
    finite: np.ndarray,
    segmap: np.ndarray,
    objs: np.ndarray,
    beam: Beam,
    config: ExtractionConfig,
    rms_median: float,
    n_pixels: int,
) -> PlaneSources:
    """Fit every detection (fixed beam, then free shape where the SNR allows), then the summits
    sep's deblending missed together with their neighbours; errors, flags."""
    ny, nx = sub.shape
    plane = _Plane(sub, rms, finite, segmap, beam, config)
    ix = np.clip(objs["xpeak"].astype(np.int64), 0, nx - 1)
    iy = np.clip(objs["ypeak"].astype(np.int64), 0, ny - 1)
    flags = np.zeros(len(objs), dtype=np.int32)
    flags[(objs["flag"] & sep.OBJ_MERGED) != 0] |= FLAG_BLENDED
    ba, bb, bc = _beam_abc(beam)

    def starts(amp: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        k = amp.size
        return np.column_stack(
            [np.maximum(amp, 1e-30).astype(np.float64), x.astype(np.float64),
             y.astype(np.float64), np.full(k, ba), np.full(k, bb), np.full(k, bc)]
        )  # fmt: skip

    start = starts(objs["peak"], ix, iy)
    rows = np.arange(len(objs))
    p, shaped = _fit_pass(plane, rows, ix, iy, start, flags)

    extra = _summits(plane, p, ix, iy) if config.summit_rounds > 0 else np.empty((0, 3))
    n0 = len(objs)
    if extra.shape[0]:
        ex, ey = extra[:, 0].astype(np.int64), extra[:, 1].astype(np.int64)
        ix, iy = np.concatenate([ix, ex]), np.concatenate([iy, ey])
        start = np.vstack([start, starts(extra[:, 2], ex, ey)])
        p = np.vstack([p, start[n0:]])
        shaped = np.concatenate([shaped, np.zeros(ex.size, dtype=bool)])
        flags = np.concatenate([flags, np.zeros(ex.size, dtype=np.int32)])
    # Components whose fits see each other's flux: the new ones, and those sep split from one
    # island (each fitted without its neighbours' pixels, but with their wings). Each member of
    # a pair within 3 beam majors of which one is such a component is fitted again on the data
    # less its neighbours, a few rounds.
    group, pairs = _blend_groups(p, n0, flags, 3.0 * beam.bmaj_px)
    if group.size and config.summit_rounds > 0:
        flags[group] |= FLAG_BLENDED
        refit_start = start.copy()
        refit_start[group, 0] = np.maximum(p[group, 0], 1e-30)
        # Block Gauss-Seidel from beam-shaped starts (the first pass may have fitted a blend as
        # one wide source): the members of one colour have no neighbour among themselves, so
        # they are fitted together on the data less the others' latest models.
        p[group] = refit_start[group]
        fl = np.zeros(flags.size, dtype=np.int32)
        colours = _colours(group, pairs)
        for _ in range(config.summit_rounds):
            fl[:] = 0
            for members in colours:
                q, q_shaped = _fit_pass(
                    plane, members, ix[members], iy[members], p[members].copy(), fl,
                    p_all=p, pairs=pairs,
                )  # fmt: skip
                p[members], shaped[members] = q, q_shaped
        # The first pass's fit flags described the blended fit; the last round's replace them.
        flags[group] = (flags[group] & FLAG_BLENDED) | fl[group] | FLAG_BLENDED
    flags[~shaped] |= FLAG_BEAM_SHAPE

    bmaj, bmin, pa = _shape_of(p[:, 3], p[:, 4], p[:, 5])
    bmaj = np.where(shaped, bmaj, beam.bmaj_px)
    bmin = np.where(shaped, bmin, beam.bmin_px)
    pa = np.where(shaped, pa, (beam.bpa_deg + 90.0) % 180.0 - 90.0)
    x, y, amp = p[:, 1], p[:, 2], p[:, 0]
    local = _at(rms, x, y).astype(np.float64)
    background = _at(back, x, y).astype(np.float64)
    clipped = ~(local > 0) | ~np.isfinite(local)
    local = np.where(clipped, rms_median, local)
    flags[clipped] |= FLAG_CLIPPED

    flux_int = amp * (bmaj * bmin) / (beam.bmaj_px * beam.bmin_px)
    errs = _condon_errors(amp, bmaj, bmin, pa, local, beam, shaped)
    scale = position_error_factor(config.noise_correlation)
    errs = (errs[0] * scale, errs[1] * scale, errs[2], errs[3])
    dc_maj, dc_min, dc_pa = _deconvolve(bmaj, bmin, pa, beam)
    dc_maj, dc_min, dc_pa = (np.where(shaped, v, 0.0) for v in (dc_maj, dc_min, dc_pa))

    cols = {
        "x": x, "y": y, "x_err": errs[0], "y_err": errs[1], "flux_peak": amp,
        "flux_peak_err": errs[2], "flux_int": flux_int, "flux_int_err": errs[3],
        "local_rms": local, "background": background, "bmaj_px": bmaj, "bmin_px": bmin,
        "pa_deg": pa, "dc_bmaj_px": dc_maj, "dc_bmin_px": dc_min, "dc_pa_deg": dc_pa,
        "snr": amp / local,
    }  # fmt: skip
    for name, value in cols.items():
        value = np.asarray(value, dtype=np.float64)
        nonfinite = ~np.isfinite(value)
        if nonfinite.any():
            flags[nonfinite] |= FLAG_CLIPPED
            value = np.where(nonfinite, 0.0, value)
        cols[name] = value
    return PlaneSources(**cols, flags=flags, rms_median=rms_median, n_pixels=n_pixels)


def _at(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The map at the nearest pixel of each position (clipped into the image)."""
    ny, nx = image.shape
    cx = np.clip(np.rint(np.nan_to_num(x)).astype(np.int64), 0, nx - 1)
    cy = np.clip(np.rint(np.nan_to_num(y)).astype(np.int64), 0, ny - 1)
    return image[cy, cx]


def _condon_errors(
    amp: np.ndarray,
    bmaj: np.ndarray,
    bmin: np.ndarray,
    pa: np.ndarray,
    rms: np.ndarray,
    beam: Beam,
    shaped: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y, peak and integrated flux errors of Condon (1997) eq. 21 with the correlated-noise
    rho of Condon et al. (1998) eq. 26 (theta_N^2 = beam bmaj bmin), as PyBDSF's get_errors:

        rho^2 = (M m / 4 theta_N^2) (1 + theta_N^2/M^2)^aM (1 + theta_N^2/m^2)^am (A/sigma)^2
        (aM, am) = (3/2, 3/2) amplitude, (5/2, 1/2) major axis and position along it,
                   (1/2, 5/2) minor axis and position along it;
        sigma(A)/A = sqrt(2)/rho_A, sigma(M)/M = sqrt(2)/rho_M, sigma(x_M) = sigma(M)/sqrt(8 ln 2)

    positions rotated to x, y by the fitted PA; integrated flux (Condon 1997 eq. 36 as PyBDSF):
    sigma(S)^2/S^2 = sigma(A)^2/A^2 + theta_N^2/(M m) (sigma(M)^2/M^2 + sigma(m)^2/m^2), the size
    term only where the shape was fitted (a beam-shape row's S is A x 1: its size is assumed)."""
    tn2 = beam.bmaj_px * beam.bmin_px
    snr = amp / rms
    base = np.sqrt(bmaj * bmin / (4.0 * tn2)) * snr  # rho without the two shape factors
    f1 = 1.0 + tn2 / (bmaj * bmaj)
    f2 = 1.0 + tn2 / (bmin * bmin)
    sq2 = math.sqrt(2.0)
    rel_amp = sq2 / (base * f1**0.75 * f2**0.75)
    e_maj = bmaj * sq2 / (base * f1**1.25 * f2**0.25)
    e_min = bmin * sq2 / (base * f1**0.25 * f2**1.25)
    d1 = math.sqrt(8.0 * math.log(2.0))
    par = np.radians(pa)
    x_err = np.hypot(e_maj * np.sin(par), e_min * np.cos(par)) / d1
    y_err = np.hypot(e_maj * np.cos(par), e_min * np.sin(par)) / d1
    size_term = np.where(
        shaped, tn2 / (bmaj * bmin) * ((e_maj / bmaj) ** 2 + (e_min / bmin) ** 2), 0.0
    )
    flux_int = amp * (bmaj * bmin) / tn2
    return x_err, y_err, amp * rel_amp, flux_int * np.sqrt(rel_amp**2 + size_term)


def _deconvolve(
    bmaj: np.ndarray, bmin: np.ndarray, pa: np.ndarray, beam: Beam
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wild (1970): the source's FWHM covariance minus the beam's, back to axes and PA; an axis
    whose difference is not positive is unresolved (0), and so is the PA of a round remainder."""

    def cov(maj: np.ndarray | float, mnr: np.ndarray | float, pa_deg: np.ndarray | float):
        t = np.radians(pa_deg)
        s, c = np.sin(t), np.cos(t)
        # major axis along (-sin pa, cos pa), minor along (cos pa, sin pa)
        return (
            maj * maj * s * s + mnr * mnr * c * c,
            maj * maj * c * c + mnr * mnr * s * s,
            (mnr * mnr - maj * maj) * s * c,
        )

    fxx, fyy, fxy = cov(bmaj, bmin, pa)
    gxx, gyy, gxy = cov(beam.bmaj_px, beam.bmin_px, beam.bpa_deg)
    dmaj, dmin, dpa = _axes(fxx - gxx, fyy - gyy, fxy - gxy, scale=1.0)
    dpa = np.where(dmaj > 0, dpa, 0.0)
    return dmaj, dmin, dpa
