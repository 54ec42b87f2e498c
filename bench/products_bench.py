"""Per-image cost of thumbnail + QA, against the straightforward way, in the same process.

Ours:      assets.qa.statistics.compute_stats + grade, assets.thumbnails.render.render_thumbnail
           (subsampled MAD, block mean, our ZScale, asinh, Pillow PNG).
Baseline:  astropy.stats.sigma_clipped_stats for the noise, then a matplotlib thumbnail of the
           full image (Figure + Agg, ``imshow`` with astropy's ZScaleInterval and AsinhStretch,
           ``savefig`` to a 256 px PNG): what one writes without thinking about speed.

Both get the same in-memory float32 image: Gaussian noise of known σ plus point sources. The
script prints seconds per image, the speed-up ratio, and the accuracy of each noise estimate
(relative to the known σ and to each other), as a Markdown table for docs/performance.md.

    .venv/bin/python bench/products_bench.py [--sizes 1024 4096] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from astropy.stats import sigma_clipped_stats
from baseline import zscale_png  # bench/baseline.py, beside this script

from assets.qa.statistics import compute_stats, grade
from assets.thumbnails.render import render_thumbnail

SIGMA = 0.002


def make_image(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((n, n), dtype=np.float32) * np.float32(SIGMA)
    k = max(10, n * n // 20_000)
    rows, cols = rng.integers(0, n, k), rng.integers(0, n, k)
    image[rows, cols] = rng.uniform(20 * SIGMA, 1.0, k).astype(np.float32)
    return image


def ours(image: np.ndarray) -> float:
    stats = compute_stats(image)
    grade(stats, 30.0, 20.0, 0.0)
    render_thumbnail(image)
    assert stats.rms is not None
    return stats.rms


def baseline(image: np.ndarray) -> float:
    _, _, std = sigma_clipped_stats(image)
    zscale_png(image)
    return float(std)


def timed(fn: Callable[[np.ndarray], float], image: np.ndarray, repeat: int) -> tuple[float, float]:
    """(median seconds per call, result) after one warm-up call."""
    result = fn(image)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(
        "| image | ours s/image | baseline s/image | speed-up | ours rms/σ − 1 "
        "| baseline std/σ − 1 | ours vs baseline |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        image = make_image(n, seed=n)
        t_ours, rms = timed(ours, image, args.repeat)
        t_base, std = timed(baseline, image, max(1, args.repeat - 1))
        print(
            f"| {n}² float32 | {t_ours:.4f} | {t_base:.3f} | {t_base / t_ours:.1f}× "
            f"| {rms / SIGMA - 1:+.3%} | {std / SIGMA - 1:+.3%} | {rms / std - 1:+.3%} |"
        )


if __name__ == "__main__":
    main()
