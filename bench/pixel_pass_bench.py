"""Threads or processes for the pixel pass: read + QA statistics + thumbnail of each plane.

    .venv/bin/python bench/pixel_pass_bench.py [--n 80] [--size 1024] [--workers 2]

Writes N synthetic images (resources/fits/synthetic.py) to a temporary directory, then times the
same per-image work three ways in this process: one thread; `resources.fits.pixels.map_planes`
on `--workers` threads (what `image_products` does); a forkserver process pool of `--workers`
(modules preloaded; its start-up timed apart). Prints ms per image. Timings, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assets.qa.statistics import compute_stats
from assets.thumbnails.render import render_thumbnail
from resources.fits.pixels import map_planes, read_plane
from resources.fits.synthetic import ImageSpec, write_image

PRELOAD = ["resources.fits.pixels", "assets.qa.statistics", "assets.thumbnails.render"]


def work(path: str) -> int:
    plane = read_plane(path, 0)
    compute_stats(plane, source=path)
    return len(render_thumbnail(plane, size=256, source=path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=80)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="contimg-pixels-") as tmp:
        files = []
        for k in range(args.n):
            when = dt.datetime(2025, 10, 1, tzinfo=dt.UTC) + k * dt.timedelta(minutes=5)
            spec = ImageSpec(date_obs=when, dec_deg=16.3, size=args.size, seed=k)
            files.append(str(write_image(Path(tmp) / f"img{k:04d}.fits", spec)))
        work(files[0])
        print(
            f"{args.n} images of {args.size}²; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
        )
        started = time.perf_counter()
        for path in files:
            work(path)
        print(
            f"  one thread:             {(time.perf_counter() - started) / args.n * 1e3:6.2f} ms/image"
        )
        started = time.perf_counter()
        map_planes(
            files,
            lambda p: (p, 0),
            [
                lambda p, plane, why: compute_stats(plane, source=p),
                lambda p, plane, why: render_thumbnail(plane, size=256, source=p),
            ],
            threads=args.workers,
        )
        per = (time.perf_counter() - started) / args.n * 1e3
        print(f"  map_planes, {args.workers} threads:  {per:6.2f} ms/image")
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        started = time.perf_counter()
        with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            list(pool.map(work, files[: args.workers]))
            boot = time.perf_counter() - started
            started = time.perf_counter()
            list(pool.map(work, files, chunksize=4))
            per = (time.perf_counter() - started) / args.n * 1e3
        print(
            f"  {args.workers} processes (forkserver): {per:6.2f} ms/image, +{boot:.2f} s to start"
        )


if __name__ == "__main__":
    main()
