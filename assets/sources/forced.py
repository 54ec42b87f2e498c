"""Forced photometry at known positions: the weighted beam-kernel fit of VAST's `forced_phot`.

Why re-implemented (docs/source-finder.md, "Forced photometry"): `forced_phot` is not on PyPI
and needs numba; its method is small. At a fixed position and with the beam's shape the model
is linear in the one unknown, the peak flux, so the weighted least-squares fit (Condon 1997) has
a closed form,

    flux = Σ(d·K/n²) / Σ(K²/n²),   flux_err = Σ(n·K/n²) / Σ(K/n²),
    χ²   = Σ((d − flux·K)/n)²,     reduced χ² = χ² / (pixels − 1),

with `d` the background-subtracted data, `n` the rms map and `K` the peak-normalised beam at the
position, over a square cutout of half-size `nbeam` × BMAJ. All isolated positions of a plane
are fitted at once (one (N, S, S) stack, in chunks), without a per-position Python loop.

Positions closer than `cluster_threshold` × BMAJ are fitted jointly, as `forced_phot` does
(KD-tree pairs, then connected components): over the box that covers all the members' cutouts,
the fluxes solve the n×n normal equations (AᵀWA) f = AᵀWd with A the members' kernels and
W = 1/n². A single fit of one member of a pair one beam apart takes in a large share of the
neighbour's flux; the joint fit does not.

Errors. `flux_err` is `forced_phot`'s: the kernel-weighted mean of the rms map, i.e. ≈ the local
rms. That is the error of a peak flux for noise correlated like the beam (Condon 1997), not the
error of this matched-filter estimator: with noise whose correlation is a Gaussian c times the
beam's covariance, the estimator's error is sqrt(4c / (c + 2)) × rms (continuous limit, constant
rms). Real interferometric images have c ≈ 1 (noise correlated like the dirty beam's main lobe:
factor 1.15); the synthetic images of `resources.fits.synthetic` have white noise convolved with
the beam, c = 2 (factor 1.41, which the tests measure: scatter / VAST error = 1.38).
`ForcedConfig.noise_corr_scale` = c applies that factor; None (the default) keeps VAST's value,
so that fluxes and errors compare with VAST's. In a cluster, a member's error is its isolated
error times the blending inflation sqrt((AᵀWA)⁻¹_kk · (AᵀWA)_kk), so that it reduces to the
single-source error when the members are far apart.

Skipped positions (NaN in every float column, `skipped` True, `n_cluster` 0): non-finite
positions; positions within `edge_beams` × BMAJ of the image edge or whose cutout does not fit in
the image (`n_skipped_edge`); positions with a blank pixel (non-finite data, non-finite or
non-positive rms) anywhere in their cutout (`n_skipped_blank`) - a choice: a partly blank cutout
is a mosaic edge, where the rms map is not to be trusted either. Skipped positions take no part
in clusters (their flux, if any, is not modelled in the neighbours' fits).

No state is kept between calls and nothing is written to the inputs: several planes can be
fitted from several threads at once. The pixel and PA conventions are those of
`assets.sources.beam` (x = column, y = row, 0-based).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from assets.sources.beam import Beam

_CHUNK = 256  # positions per stack of cutouts: ~2 MB per (chunk, S, S) float64 array at S = 31
_COND_MAX = 1e10  # normal matrices worse conditioned than this (coincident positions): pinv


@dataclass(frozen=True)
class ForcedConfig:
    """Settings of `forced_fit`; nbeam is a half-size (VAST's `nbeam` is the full width)."""

    nbeam: float = 3.0  # cutout half-size in beam majors
    cluster_threshold: float = 1.5  # positions closer than this x BMAJ are fitted jointly
    edge_beams: float = 3.0  # positions within this many BMAJ of the edge are skipped
    # Noise correlation covariance / beam covariance; None: VAST's error (≈ local rms).
    noise_corr_scale: float | None = None


@dataclass
class ForcedResult:
    """One entry per input position, in input order; NaN in the float columns where skipped."""

    flux: np.ndarray  # Jy/beam (peak flux of a point source)
    flux_err: np.ndarray
    local_rms: np.ndarray  # the rms map at the nearest pixel
    chi_squared: np.ndarray  # reduced chi^2 of the fit (of the joint fit for a cluster)
    n_cluster: np.ndarray  # int: size of the group fitted jointly (1 alone, 0 skipped)
    skipped: np.ndarray  # bool
    n_skipped_edge: int = 0
    n_skipped_blank: int = 0

    def __len__(self) -> int:
        return int(self.flux.size)


def correlated_error_factor(noise_corr_scale: float) -> float:
    """sqrt(4c / (c + 2)): the matched-filter flux error over the rms, for noise whose
    correlation is a Gaussian of c times the beam's covariance (constant rms, continuous
    limit). c = 1: noise correlated like the beam; c = 2: white noise convolved with the beam."""
    c = float(noise_corr_scale)
    if not c > 0.0:
        raise ValueError(f"noise_corr_scale must be > 0, got {noise_corr_scale}")
    return math.sqrt(4.0 * c / (c + 2.0))


def subtract_sources(
    data: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    peak: np.ndarray,
    beams: list[Beam],
    near_x: np.ndarray,
    near_y: np.ndarray,
    reach_px: float,
) -> int:
    """Subtract in place the Gaussians of detected sources (pixel positions, peaks in the data's
    unit, fitted shapes) that lie within `reach_px` of a position to be fitted; returns how many.

    A forced fit next to a detected source sees its wings: VAST's test epoch 2 put a 1 Jy source
    0.9 beam majors from a position measured in the other epochs, which then read 133 mJy where
    there was nothing (docs/sources.md, "Real data"). Only the neighbours are rendered, each in
    a box of 3 major axes, so the cost does not grow with the image.
    """
    if x.size == 0 or near_x.size == 0:
        return 0
    tree = cKDTree(np.column_stack([near_x, near_y]))
    close = tree.query_ball_point(np.column_stack([x, y]), reach_px)
    ny, nx = data.shape
    done = 0
    for k, hits in enumerate(close):
        if not hits:
            continue
        b = beams[k]
        half = math.ceil(3.0 * b.bmaj_px)
        x0, y0 = round(float(x[k])), round(float(y[k]))
        xs = slice(max(0, x0 - half), min(nx, x0 + half + 1))
        ys = slice(max(0, y0 - half), min(ny, y0 + half + 1))
        if xs.start >= xs.stop or ys.start >= ys.stop:
            continue
        gy, gx = np.mgrid[ys, xs]
        data[ys, xs] -= peak[k] * b.gaussian(gx - x[k], gy - y[k])
        done += 1
    return done


def forced_fit(
    data: np.ndarray,
    noise: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    beam: Beam,
    config: ForcedConfig = ForcedConfig(),
) -> ForcedResult:
    """Fit the beam's peak flux at each (x, y) of `data` (background-subtracted, Jy/beam) with
    the rms map `noise` of the same shape; see the module docstring for the method."""
    if data.ndim != 2 or data.shape != noise.shape:
        raise ValueError(f"data {data.shape} and noise {noise.shape} must be one 2-D shape")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} differ")
    ny, nx = data.shape
    n_pos = x.size
    bmaj = float(beam.bmaj_px)
    half = max(1, math.ceil(config.nbeam * bmaj))
    size = 2 * half + 1
    factor = (
        1.0 if config.noise_corr_scale is None else correlated_error_factor(config.noise_corr_scale)
    )

    flux = np.full(n_pos, np.nan)
    flux_err = np.full(n_pos, np.nan)
    local_rms = np.full(n_pos, np.nan)
    chi2 = np.full(n_pos, np.nan)
    n_cluster = np.zeros(n_pos, dtype=np.int64)
    skipped = np.ones(n_pos, dtype=bool)

    # Edge: too close to the border by the config, or the cutout would not fit.
    edge = config.edge_beams * bmaj
    finite = np.isfinite(x) & np.isfinite(y)
    xs, ys = np.where(finite, x, -1.0), np.where(finite, y, -1.0)
    cx, cy = np.rint(xs).astype(np.int64), np.rint(ys).astype(np.int64)
    inside = (
        finite
        & (xs >= edge)
        & (xs <= nx - 1 - edge)
        & (ys >= edge)
        & (ys <= ny - 1 - edge)
        & (cx - half >= 0)
        & (cx + half <= nx - 1)
        & (cy - half >= 0)
        & (cy + half <= ny - 1)
    )
    n_edge = int(n_pos - np.count_nonzero(inside))
    idx = np.flatnonzero(inside)

    # Isolated fits of every position that is not at the edge (cluster members are refitted).
    d_win = sliding_window_view(data, (size, size))
    n_win = sliding_window_view(noise, (size, size))
    offs = np.arange(-half, half + 1, dtype=np.float64)
    blank = np.zeros(n_pos, dtype=bool)
    sum_k2w = np.zeros(n_pos)
    for start in range(0, idx.size, _CHUNK):
        sel = idx[start : start + _CHUNK]
        d = d_win[cy[sel] - half, cx[sel] - half].astype(np.float64)
        n = n_win[cy[sel] - half, cx[sel] - half].astype(np.float64)
        dx = (cx[sel] - x[sel])[:, None, None] + offs[None, None, :]
        dy = (cy[sel] - y[sel])[:, None, None] + offs[None, :, None]
        k = beam.gaussian(dx, dy)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = 1.0 / (n * n)
            kw = k * w
            s_k2w = np.einsum("pij,pij->p", kw, k)
            f = np.einsum("pij,pij->p", kw, d) / s_k2w
            err = np.einsum("pij,pij->p", kw, n) / kw.sum(axis=(1, 2))
            resid = d - f[:, None, None] * k
            c2 = np.einsum("pij,pij->p", resid * resid, w) / (size * size - 1)
        bad = ~(np.isfinite(c2) & np.isfinite(err) & (n > 0.0).all(axis=(1, 2)))
        blank[sel] = bad
        flux[sel], flux_err[sel], chi2[sel] = f, err * factor, c2
        sum_k2w[sel] = s_k2w
        local_rms[sel] = noise[cy[sel], cx[sel]]
    good = inside & ~blank
    n_blank = int(np.count_nonzero(inside & blank))
    skipped = ~good
    n_cluster[good] = 1

    # Clusters among the fitted positions.
    gidx = np.flatnonzero(good)
    if gidx.size > 1:
        pairs = cKDTree(np.column_stack([x[gidx], y[gidx]])).query_pairs(
            config.cluster_threshold * bmaj, output_type="ndarray"
        )
        if pairs.size:
            graph = coo_matrix(
                (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(gidx.size, gidx.size)
            )
            _, labels = connected_components(graph, directed=False)
            counts = np.bincount(labels)
            multi = np.flatnonzero(counts > 1)
            order = np.argsort(labels, kind="stable")
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for lab in multi:
                members = gidx[order[bounds[lab] : bounds[lab + 1]]]
                _fit_cluster(data, noise, x, y, cx, cy, members, half, beam, sum_k2w, flux,
                             flux_err, chi2)  # fmt: skip
                n_cluster[members] = members.size

    for arr in (flux, flux_err, local_rms, chi2):
        arr[skipped] = np.nan
    return ForcedResult(flux, flux_err, local_rms, chi2, n_cluster, skipped, n_edge, n_blank)


def _fit_cluster(
    data: np.ndarray,
    noise: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    members: np.ndarray,
    half: int,
    beam: Beam,
    sum_k2w: np.ndarray,
    flux: np.ndarray,
    flux_err: np.ndarray,
    chi2: np.ndarray,
) -> None:
    """Joint fit of `members` over the box covering their cutouts; writes their rows in place
    (flux_err, on entry each member's isolated error, is scaled by the blending inflation)."""
    x0, x1 = int(cx[members].min()) - half, int(cx[members].max()) + half + 1
    y0, y1 = int(cy[members].min()) - half, int(cy[members].max()) + half + 1
    d = np.asarray(data[y0:y1, x0:x1], dtype=np.float64).ravel()
    n = np.asarray(noise[y0:y1, x0:x1], dtype=np.float64).ravel()
    use = np.isfinite(d) & np.isfinite(n) & (n > 0.0)  # the box may reach blank pixels
    d, n = d[use], n[use]
    w = 1.0 / (n * n)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    xx, yy = xx.ravel()[use].astype(np.float64), yy.ravel()[use].astype(np.float64)
    a = beam.gaussian(xx[None, :] - x[members, None], yy[None, :] - y[members, None])  # (m, p)
    aw = a * w
    normal = aw @ a.T
    rhs = aw @ d
    if np.linalg.cond(normal) < _COND_MAX:
        cov = np.linalg.inv(normal)
    else:  # coincident positions: the minimum-norm solution shares the flux between them
        cov = np.linalg.pinv(normal)
    f = cov @ rhs
    resid = d - f @ a
    dof = max(d.size - members.size, 1)
    inflation = np.sqrt(np.clip(np.diag(cov) * np.diag(normal), 0.0, None))
    flux[members] = f
    flux_err[members] = flux_err[members] * inflation
    chi2[members] = float(np.sum(resid * resid * w)) / dof
    del sum_k2w  # the isolated Σ K²/n² is not needed: the box's diagonal replaces it
