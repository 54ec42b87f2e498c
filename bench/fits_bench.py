"""FITS metadata extraction benchmark: ratios against a plain astropy loop in the same run.

    .venv/bin/python bench/fits_bench.py [--n 200] [--size 512] [--workers 4] [--dir DIR]

Baseline: `fits.getheader(path)` + `WCS(header)` per file (no validation, no fingerprint, no
centre, no cache). Measured against it, each on the same N generated DSA-110 images:
cold sequential / cold concurrent parses (fresh cache), warm cache, parse without fingerprint,
with the whole-file xxh3 (the default), with the whole-file sha256 of before (the legacy
scheme), with the sampled fingerprint forced, and the header-only `read_obs_date`.
bench/fingerprint_bench.py measures the hashes alone (ms per MiB, warm and cold).
Ratios > 1 mean slower than the baseline. Timings are wall-clock on a shared machine: compare
ratios, not seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from astropy.io import fits
from astropy.wcs import WCS

from resources.fits import structure
from resources.fits.parser import parse_fits, read_obs_date
from resources.fits.synthetic import ImageSpec, write_image
from resources.fits_service import FitsMetadataService


def make_images(out: Path, n: int, size: int) -> list[Path]:
    start = dt.datetime(2025, 10, 1, 2, tzinfo=dt.UTC)
    paths = []
    for i in range(n):
        when = start + i * dt.timedelta(minutes=5)
        name = f"{when:%Y-%m-%dT%H:%M:%S}.fits"
        path = out / name
        if not path.exists():
            write_image(path, ImageSpec(date_obs=when, dec_deg=54.6, size=size, seed=i))
        paths.append(path)
    return paths


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best of `repeat` runs (the files stay in the page cache: this measures CPU, not disk)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def baseline(paths: list[Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in paths:
            WCS(fits.getheader(p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        images = args.dir or Path(tmp) / "images"
        images.mkdir(parents=True, exist_ok=True)
        paths = make_images(images, args.n, args.size)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        base = timed(lambda: baseline(paths))
        rows: list[tuple[str, float]] = [("astropy getheader + WCS (baseline)", base)]

        def cold(workers: int) -> Callable[[], object]:
            def run() -> object:
                cache_dir = Path(tempfile.mkdtemp(dir=tmp))
                service = FitsMetadataService(cache_path=cache_dir / "c.sqlite3")
                outcomes = service.parse_many(paths, max_workers=workers)
                assert all(o.ok for o in outcomes)
                service.close()
                return outcomes

            return run

        rows.append(("cold cache, sequential (validate + parse + xxh3 + store)", timed(cold(1))))
        rows.append((f"cold cache, {args.workers} threads", timed(cold(args.workers))))
        warm_service = FitsMetadataService(cache_path=Path(tmp) / "warm.sqlite3")
        warm_service.parse_many(paths)
        rows.append(("warm cache, sequential (stat + SQLite lookup)",
                     timed(lambda: warm_service.parse_many(paths, max_workers=1))))  # fmt: skip
        rows.append((f"warm cache, {args.workers} threads",
                     timed(lambda: warm_service.parse_many(paths, max_workers=args.workers))))  # fmt: skip
        rows.append(("parse_fits, no fingerprint, no cache",
                     timed(lambda: [parse_fits(p, compute_fingerprint=False) for p in paths])))  # fmt: skip
        rows.append(("parse_fits, whole-file xxh3, no cache",
                     timed(lambda: [parse_fits(p) for p in paths])))  # fmt: skip
        structure.FINGERPRINT_SCHEME = structure.LEGACY_SCHEME
        try:
            rows.append(("parse_fits, whole-file sha256 (legacy scheme), no cache",
                         timed(lambda: [parse_fits(p) for p in paths])))  # fmt: skip
        finally:
            structure.FINGERPRINT_SCHEME = "xxh3"
        limit = structure.FINGERPRINT_FULL_LIMIT
        structure.FINGERPRINT_FULL_LIMIT = 0
        try:
            rows.append(("parse_fits, sampled xxh3 (forced), no cache",
                         timed(lambda: [parse_fits(p) for p in paths])))  # fmt: skip
        finally:
            structure.FINGERPRINT_FULL_LIMIT = limit
        rows.append(("read_obs_date (header only, sensor path)",
                     timed(lambda: [read_obs_date(p) for p in paths])))  # fmt: skip

    print(f"{args.n} images of {args.size}x{args.size}x1x1 float32, {size_mb:.0f} MB total")
    print(f"{'case':<62} {'s':>8} {'ms/file':>8} {'x base':>7}")
    for name, seconds in rows:
        print(f"{name:<62} {seconds:8.3f} {seconds / args.n * 1e3:8.2f} {seconds / base:7.2f}")


if __name__ == "__main__":
    main()
