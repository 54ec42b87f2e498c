"""Synthetic radio-like images with known noise and sources, shared by the asset tests."""

from __future__ import annotations

import numpy as np


def noise_image(
    n_rows: int,
    n_cols: int | None = None,
    *,
    sigma: float = 0.002,
    seed: int = 0,
    n_sources: int = 20,
    peak: float = 1.0,
) -> np.ndarray:
    """Gaussian noise of known σ (float32) plus point sources; the brightest is exactly ``peak``.

    Sources are single pixels with fluxes up to ``peak`` so that the peak is known and the noise
    statistics are barely disturbed (as in a real field, sources cover a tiny share of pixels).
    """
    n_cols = n_rows if n_cols is None else n_cols
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((n_rows, n_cols), dtype=np.float32)
    image *= np.float32(sigma)
    rows = rng.integers(0, n_rows, n_sources)
    cols = rng.integers(0, n_cols, n_sources)
    fluxes = rng.uniform(20 * sigma, peak, n_sources)
    fluxes[0] = peak
    image[rows, cols] = fluxes.astype(np.float32)
    image[rows[0], cols[0]] = np.float32(peak)
    return image


def smoothed_noise_image(
    n: int, *, sigma: float = 0.002, seed: int = 0, box: int = 4
) -> np.ndarray:
    """Noise correlated over ``box`` pixels (a crude restoring beam), rescaled to σ."""
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal((n + box, n + box))
    csum = raw.cumsum(axis=0).cumsum(axis=1)
    boxed = csum[box:, box:] - csum[:-box, box:] - csum[box:, :-box] + csum[:-box, :-box]
    boxed /= box
    return (boxed[:n, :n] * sigma).astype(np.float32)


def full_robust_rms(image: np.ndarray) -> float:
    """Reference: 1.4826 × MAD over every finite pixel, with np.median (independent of our code)."""
    values = np.asarray(image, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(1.4826 * np.median(np.abs(values - np.median(values))))
