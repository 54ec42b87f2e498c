"""`contimg` command-line benchmark: start-up, and `fits inspect` over many files.

    .venv/bin/python bench/cli_bench.py [--runs 10] [--fits 300] [--size 256] [--json]
        [--before DIR]

Each command is run as a user types it (the venv's `contimg` script, a fresh process, from a
directory outside the project), interleaved round by round so that a change of load on a
shared machine hits every case alike; medians of `--runs` wall-clock runs, interpreter start
included.

- Start-up: `contimg --help` and two sub-command helps against the floor of any click program,
  `python -c "import click"`.
- `fits inspect` (`--fits N`, 0 to skip): N DSA-110-like images written by
  `resources/fits/synthetic.py` (SIZE x SIZE x 1 x 1 float32), inspected by `contimg fits
  inspect` (human output, `--json`, `--workers 1`, and a warm shared cache) against the bare
  astropy loop in a fresh `python` process, `fits.getheader(path)` + `WCS(header)` per file:
  once as written (astropy prints a FITSFixedWarning per file to stderr, captured) and once with
  the warnings silenced, the faster of the two and the baseline of the ratios. The loop
  validates nothing and computes no centre, fingerprint or cache entry; `contimg` does all of
  that and still must not be slower.

`--before DIR`: also run `contimg --help` and `contimg fits inspect FILES` with the packages of
another tree first on the path (`PYTHONPATH=DIR`, e.g. `git archive HEAD~1 pipeline_defs
resources | tar -x -C DIR`), for before/after numbers in the same run.

Ratios > 1 mean slower than the baseline. On a shared machine compare ratios, not seconds; the
1-minute load average before each case's runs is printed (median over its rounds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
CONTIMG = str(VENV_BIN / "contimg")
STARTUP = {
    "import click (floor)": [sys.executable, "-c", "import click"],
    "contimg --help": [CONTIMG, "--help"],
    "contimg fits inspect --help": [CONTIMG, "fits", "inspect", "--help"],
    "contimg db status --help": [CONTIMG, "db", "status", "--help"],
}
ASTROPY_LOOP = """\
import sys
from astropy.io import fits
from astropy.wcs import WCS
for path in sys.argv[1:]:
    WCS(fits.getheader(path))
"""
ASTROPY_LOOP_QUIET = "import warnings\nwarnings.simplefilter('ignore')\n" + ASTROPY_LOOP
LOOP_NAME = "astropy loop (getheader + WCS)"
QUIET_NAME = "astropy loop, warnings silenced"


def write_images(directory: Path, n: int, size: int) -> list[str]:
    """N images of one observation day, one per 5 minutes (deterministic)."""
    from resources.fits.synthetic import ImageSpec, write_image

    start = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    paths = []
    for i in range(n):
        spec = ImageSpec(
            date_obs=start + dt.timedelta(minutes=5 * i), dec_deg=16.3, size=size, seed=i,
            n_sources=5,
        )  # fmt: skip
        paths.append(str(write_image(directory / f"img{i:04d}.fits", spec)))
    return paths


def fits_cases(
    paths: list[str], cache: Path, before: str | None
) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (command, extra environment) of the `fits inspect` comparison."""
    # Relative names, as a user in that directory types them (and a shorter command line).
    names = [os.path.basename(p) for p in paths]
    warm = {"CONTIMG_FITS_CACHE_PATH": str(cache)}
    return {
        LOOP_NAME: ([sys.executable, "-c", ASTROPY_LOOP, *names], {}),
        QUIET_NAME: ([sys.executable, "-c", ASTROPY_LOOP_QUIET, *names], {}),
        "contimg fits inspect FILES": ([CONTIMG, "fits", "inspect", *names], {}),
        "contimg fits inspect --json FILES": ([CONTIMG, "fits", "inspect", "--json", *names], {}),
        "contimg fits inspect --workers 1 FILES": (
            [CONTIMG, "fits", "inspect", "--workers", "1", *names],
            {},
        ),
        "contimg fits inspect FILES (warm cache)": ([CONTIMG, "fits", "inspect", *names], warm),
        **(
            {"before: contimg fits inspect FILES": (
                [CONTIMG, "fits", "inspect", *names], {"PYTHONPATH": before}
            )}
            if before
            else {}
        ),
    }  # fmt: skip


def measure(
    cases: dict[str, tuple[list[str], dict[str, str]]], runs: int, cwd: str
) -> dict[str, dict[str, float]]:
    """Median seconds and median 1-minute load before the run, per case, interleaved."""
    base_env = {k: v for k, v in os.environ.items() if k != "CONTIMG_FITS_CACHE_PATH"}
    times: dict[str, list[float]] = {name: [] for name in cases}
    loads: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (command, extra) in cases.items():
            loads[name].append(os.getloadavg()[0])
            started = time.perf_counter()
            proc = subprocess.run(
                command, cwd=cwd, env={**base_env, **extra}, capture_output=True, check=False
            )
            times[name].append(time.perf_counter() - started)
            if proc.returncode != 0:
                raise SystemExit(f"{name}: exit {proc.returncode}: {proc.stderr[-500:]!r}")
    return {
        name: {"seconds": statistics.median(times[name]), "load": statistics.median(loads[name])}
        for name in cases
    }


def warm_cache(cache: Path, names: list[str], cwd: str) -> None:
    """Create the shared cache and fill it with one inspect (what `make demo` leaves behind)."""
    from resources.fits.cache import FitsMetadataCache

    FitsMetadataCache(cache).close()
    env = {**os.environ, "CONTIMG_FITS_CACHE_PATH": str(cache)}
    subprocess.run(
        [CONTIMG, "fits", "inspect", *names], cwd=cwd, env=env, capture_output=True, check=True
    )


def report(title: str, results: dict[str, dict[str, float]], floor: str) -> None:
    print(title)
    base = results[floor]["seconds"]
    for name, r in results.items():
        r["ratio"] = r["seconds"] / base
        print(f"  {name:42s} {r['seconds'] * 1000:8.1f} ms  {r['seconds'] / base:5.2f}x"
              f"  load {r['load']:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fits", type=int, default=300, help="files for `fits inspect` (0: skip)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--before", help="a tree whose packages to time as well (PYTHONPATH)")
    args = parser.parse_args()
    out: dict[str, object] = {
        "nproc": len(os.sched_getaffinity(0)),
        "load_before": os.getloadavg()[0],
        "runs": args.runs,
        "utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory() as cwd:
        cases = {k: (v, {}) for k, v in STARTUP.items()}
        if args.before:
            cases["before: contimg --help"] = (
                STARTUP["contimg --help"],
                {"PYTHONPATH": args.before},
            )
        startup = measure(cases, args.runs, cwd)
        fits_results: dict[str, dict[str, float]] = {}
        if args.fits:
            paths = write_images(Path(cwd), args.fits, args.size)
            cache = Path(cwd) / "cache" / "fits_metadata.sqlite3"
            warm_cache(cache, [os.path.basename(p) for p in paths], cwd)
            fits_results = measure(fits_cases(paths, cache, args.before), args.runs, cwd)
    print(f"nproc={out['nproc']} load={out['load_before']:.2f} runs={args.runs}")
    report("start-up (ratio to import click)", startup, "import click (floor)")
    out["startup"] = startup
    if fits_results:
        baseline = min((LOOP_NAME, QUIET_NAME), key=lambda n: fits_results[n]["seconds"])
        report(
            f"fits inspect, {args.fits} files of {args.size}x{args.size} (ratio to {baseline!r})",
            fits_results,
            baseline,
        )
        out["fits"] = {"files": args.fits, "size": args.size, "baseline": baseline,
                       "results": fits_results}  # fmt: skip
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
