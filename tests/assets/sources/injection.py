"""Synthetic image planes for the source-kernel tests: beam-correlated noise plus injected
Gaussians at known sub-pixel positions, made as `resources.fits.synthetic.make_pixels` and
`bench/finder_survey.py` make them (white Gaussian noise convolved with the beam through an FFT,
rescaled to the chosen rms; sources as peak x `Beam.gaussian`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from assets.sources.beam import Beam

#: The tests' restoring beam: 3.5 x 3.0 px FWHM at PA 30 deg.
BEAM = Beam(3.5, 3.0, 30.0)
RMS = 1e-3  # Jy/beam


def noise_plane(
    shape: tuple[int, int], beam: Beam, rms: float, seed: int, corr_scale: float = 2.0
) -> np.ndarray:
    """White Gaussian noise convolved with the beam (wrap-around FFT), rescaled to `rms`; float64.

    The noise's correlation is then the beam convolved with itself: a Gaussian of twice the
    beam's covariance (c = 2 in `assets.sources.forced.correlated_error_factor`), as
    `resources.fits.synthetic` makes it. Another `corr_scale` c convolves with the beam's axes
    scaled by sqrt(c / 2) instead, so that the noise is correlated like a Gaussian of c times the
    beam's covariance: c = 1 is noise correlated exactly like the beam (Condon 1997's theta_N =
    the beam), the model the extraction's errors assume."""
    ny, nx = shape
    scale = math.sqrt(corr_scale / 2.0)
    beam = Beam(beam.bmaj_px * scale, beam.bmin_px * scale, beam.bpa_deg)
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((ny, nx))
    ky = np.fft.fftfreq(ny, 1.0 / ny)[:, None]
    kx = np.fft.fftfreq(nx, 1.0 / nx)[None, :]
    kernel = beam.gaussian(kx, ky)
    noise = np.fft.irfft2(np.fft.rfft2(white) * np.fft.rfft2(kernel), s=(ny, nx))
    noise *= rms / float(np.std(noise))
    return noise


def add_gaussian(
    plane: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    peak: np.ndarray,
    shape: Beam,
    half: int | None = None,
) -> None:
    """Add peak x `shape.gaussian` centred at each (x, y) to `plane` in place, over a square of
    half-size `half` (default ceil(5 x FWHM major)) clipped to the plane."""
    ny, nx = plane.shape
    half = half if half is not None else math.ceil(5.0 * shape.bmaj_px)
    for x0, y0, amp in zip(np.atleast_1d(x), np.atleast_1d(y), np.atleast_1d(peak), strict=True):
        i0, i1 = max(int(x0) - half, 0), min(int(x0) + half + 1, nx)
        j0, j1 = max(int(y0) - half, 0), min(int(y0) + half + 1, ny)
        if i0 >= i1 or j0 >= j1:
            continue
        ys, xs = np.mgrid[j0:j1, i0:i1]
        plane[j0:j1, i0:i1] += amp * shape.gaussian(xs - x0, ys - y0)


def convolved(beam: Beam, maj_px: float, min_px: float, pa_deg: float) -> Beam:
    """The image-plane shape of an intrinsic Gaussian (FWHM axes, PA) seen through `beam`:
    the covariances add (the PA convention of `Beam`)."""

    def cov(a: float, b: float, pa: float) -> np.ndarray:
        t = math.radians(pa)
        major = np.array([-math.sin(t), math.cos(t)])
        minor = np.array([math.cos(t), math.sin(t)])
        return a * a * np.outer(major, major) + b * b * np.outer(minor, minor)

    total = cov(maj_px, min_px, pa_deg) + cov(beam.bmaj_px, beam.bmin_px, beam.bpa_deg)
    vals, vecs = np.linalg.eigh(total)
    vmaj = vecs[:, 1]  # the larger eigenvalue's vector: (-sin pa, cos pa)
    pa = math.degrees(math.atan2(-vmaj[0], vmaj[1]))
    return Beam(math.sqrt(vals[1]), math.sqrt(vals[0]), (pa + 90.0) % 180.0 - 90.0)


def jittered_grid(
    shape: tuple[int, int], pitch: float, jitter: float, margin: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel positions on a square grid of `pitch` px, each moved by up to +-`jitter` px,
    at least `margin` px from every edge; at least pitch - 2 jitter apart."""
    ny, nx = shape
    gx = np.arange(margin + jitter, nx - margin - jitter, pitch)
    gy = np.arange(margin + jitter, ny - margin - jitter, pitch)
    xx, yy = np.meshgrid(gx, gy)
    x = xx.ravel() + rng.uniform(-jitter, jitter, xx.size)
    y = yy.ravel() + rng.uniform(-jitter, jitter, yy.size)
    return x, y


@dataclass
class Match:
    """Truth index -> detection index (-1: missed), and the detections matched to nothing."""

    det: np.ndarray
    unmatched: np.ndarray


def match(tx: np.ndarray, ty: np.ndarray, dx: np.ndarray, dy: np.ndarray, radius: float) -> Match:
    """One-to-one matching: each truth takes its nearest detection within `radius`, nearest pairs
    first (truths are far apart here, so this is the plain nearest-neighbour match)."""
    det = np.full(tx.size, -1, dtype=np.int64)
    used = np.zeros(dx.size, dtype=bool)
    if dx.size:
        dist, j = cKDTree(np.column_stack([dx, dy])).query(
            np.column_stack([tx, ty]), k=1, distance_upper_bound=radius
        )
        for i in np.argsort(dist):
            if np.isfinite(dist[i]) and not used[j[i]]:
                det[i] = j[i]
                used[j[i]] = True
    return Match(det, np.flatnonzero(~used))
