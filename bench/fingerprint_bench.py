"""Fingerprint benchmark: sha256 (the scheme before) against xxh3_128 (the current one).

    .venv/bin/python bench/fingerprint_bench.py [--sizes 4 64] [--repeat 5] [--dir DIR]

Why: the fingerprint is computed for every file the ingest parses, and the choice between the
whole-file hash and the sampled one (`structure.FINGERPRINT_FULL_LIMIT`) is a trade of
detection against read cost; this measures both sides of it on this machine.

For each size (MiB, a float32 FITS image written here) it prints ms per MiB of:
- `memory`: the hash alone over bytes already in memory (CPU cost of the algorithm);
- `warm`: the whole-file hash as `scan` does it (`structure._full_fingerprint`), file in the
  page cache (best of --repeat);
- `cold`: the same after `posix_fadvise(DONTNEED)` dropped the file's pages (median of --repeat;
  "cold-ish": a virtual disk may still be served from the host's cache);
- `sampled`: the sampled scheme (headers + 8 blocks per data unit), cold, in ms per file;
and the ratio sha256 / xxh3 of each. Wall-clock on a shared machine: print `nproc` and the load
with the numbers and compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xxhash
from astropy.io import fits

from resources.fits import structure

MIB = 1024 * 1024
SCHEMES = (structure.LEGACY_SCHEME, structure.FINGERPRINT_SCHEME)


def make_file(folder: Path, mib: int) -> Path:
    """A plain FITS image of about `mib` MiB (float32, square), written and fsynced."""
    path = folder / f"image-{mib}mib.fits"
    if not path.exists():
        side = int((mib * MIB / 4) ** 0.5)
        data = np.random.default_rng(mib).normal(size=(side, side)).astype(np.float32)
        fits.PrimaryHDU(data).writeto(path)
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())
    return path


def drop_cache(path: Path) -> None:
    """Evict the file's clean pages so that the next read goes to the disk (Linux)."""
    with open(path, "rb") as fh:
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def run(fn: Callable[[], object], repeat: int, *, cold_path: Path | None = None) -> float:
    """Warm: best of `repeat` (CPU, no disk); cold: median, the cache dropped before each."""
    times = []
    for _ in range(repeat):
        if cold_path is not None:
            drop_cache(cold_path)
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) if cold_path is not None else min(times)


def full(path: Path, scheme: str) -> Callable[[], str]:
    def go() -> str:
        with open(path, "rb") as fh:
            return structure._full_fingerprint(fh, scheme)

    return go


def sampled(path: Path, scheme: str) -> Callable[[], str]:
    hdus = list(structure.scan(path, fingerprint=False).hdus)
    size = path.stat().st_size

    def go() -> str:
        with open(path, "rb") as fh:
            return structure._sampled_fingerprint(fh, size, hdus, scheme)

    return go


def in_memory(data: bytes, scheme: str) -> Callable[[], str]:
    if scheme == structure.LEGACY_SCHEME:
        return lambda: hashlib.sha256(data).hexdigest()
    return lambda: xxhash.xxh3_128(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"nproc {os.cpu_count()}, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'size':>6} {'measure':>9} {'sha256':>10} {'xxh3':>10} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for mib in args.sizes:
            path = make_file(folder, mib)
            real = path.stat().st_size / MIB
            data = path.read_bytes()
            rows = {
                "memory": {s: run(in_memory(data, s), args.repeat) for s in SCHEMES},
                "warm": {s: run(full(path, s), args.repeat) for s in SCHEMES},
                "cold": {s: run(full(path, s), args.repeat, cold_path=path) for s in SCHEMES},
            }
            for name, by in rows.items():
                old, new = (by[s] * 1000 / real for s in SCHEMES)
                print(f"{mib:>4}Mi {name:>9} {old:>8.3f}/M {new:>8.3f}/M {old / new:>7.1f}")
            by = {s: run(sampled(path, s), args.repeat, cold_path=path) for s in SCHEMES}
            old, new = (by[s] * 1000 for s in SCHEMES)
            print(f"{mib:>4}Mi {'sampled':>9} {old:>8.2f}ms {new:>8.2f}ms {old / new:>7.1f}")
    print(f"load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
