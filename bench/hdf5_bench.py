"""Registering a day of correlator subband files (headers only) and grouping them.

    .venv/bin/python bench/hdf5_bench.py [--observations 288] [--repeat 3] [--workers N]
                                         [--baseline-files 576] [--keep DIR] [--json]

Generates a UTC day of 288 observations x 16 subbands (4,608 small UVH5 files: 16 written by
pyuvdata, the rest h5py clones of them with their times moved, ~1 ms each; `--keep DIR`
generates into DIR once and reuses it), then times, in the same run:

- ours: `resources.hdf5.registration.register_paths` on a fresh SQLite database: stat every
  file, read the headers (h5py low-level API; a process pool of `--workers`, default one per
  CPU, and `--workers 1` as well), write the rows in batched transactions, group the day;
  the best of `--repeat` runs (page cache warm: this measures CPU, not disk). Then the same
  call again on the registered day (nothing changed: a sensor tick).
- baselines, per file: pyuvdata `UVData.read(path, file_type="uvh5", read_data=False,
  run_check=False)` (the straightforward way, without its consistency check), and h5py opening every dataset of `Header` with the high-level API.
  They cost 4-10 ms a file, so they run over `--baseline-files` files (default 576, an eighth
  of the day; 0 = all) and their day total is that ms/file x the day's files. Their totals
  leave out the database and the grouping, which favours them.

Ratios < 1 mean ours is faster. Wall-clock on a shared machine: the load average is printed,
compare ratios rather than seconds. The goal (issue 20) is <= 2 s for the day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
from sqlalchemy.engine import Engine

from migrations import runner
from resources.engines import build_engine
from resources.hdf5 import headers as hdr
from resources.hdf5 import synthetic
from resources.hdf5.registration import register_paths
from resources.models.hdf5 import N_SUBBANDS
from resources.repositories import hdf5 as repo
from resources.settings import PoolSettings

DAY = dt.date(2025, 10, 6)


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load() -> float:
    return os.getloadavg()[0]


def make_day(directory: Path, observations: int) -> list[Path]:
    """The day's files, generated once per directory (a marker file records how many)."""
    marker = directory / f".complete-{observations}"
    if marker.exists():
        return sorted(directory.glob("*.hdf5"))
    if directory.exists():
        shutil.rmtree(directory)
    started = time.perf_counter()
    paths = synthetic.write_day_from_templates(directory, DAY, observations=observations)
    marker.write_text(f"{time.perf_counter() - started:.2f} s\n")
    return sorted(paths)


def fresh_engine(tmp: Path, tag: str) -> tuple[Engine, str]:
    url = f"sqlite:///{tmp / f'hdf5-{tag}.sqlite3'}"
    runner.upgrade("hdf5", url, backup=False)
    return build_engine(url, PoolSettings()), url


def time_ours(paths: list[Path], tmp: Path, repeat: int, workers: int | None) -> dict[str, float]:
    """Best of `repeat` full registrations on fresh databases, plus the unchanged re-run."""
    best: dict[str, float] | None = None
    engine: Engine | None = None
    for attempt in range(repeat):
        engine, _url = fresh_engine(tmp, f"{workers}-{attempt}")
        started = time.perf_counter()
        report = register_paths(engine, paths, workers=workers)
        total = time.perf_counter() - started
        groups = report.groups[DAY]
        assert len(groups) == len(paths) // N_SUBBANDS and all(g.complete for g in groups)
        assert repo.counts(engine)["hdf5_files"] == len(paths)
        run = {"total_s": total, **report.timings}
        if best is None or total < best["total_s"]:
            best = run
        if attempt < repeat - 1:
            engine.dispose()
    assert best is not None and engine is not None
    started = time.perf_counter()
    again = register_paths(engine, paths)
    best["unchanged_rerun_s"] = time.perf_counter() - started
    assert again.skipped_unchanged == len(paths)
    engine.dispose()
    return best


def pyuvdata_loop(paths: list[Path]) -> None:
    from pyuvdata import UVData

    with warnings.catch_warnings():
        # run_check=False: the clones' uvws are the templates' (synthetic.clone_subband), and
        # pyuvdata's check would try to fix them on visibilities it has not read. Skipping the
        # check makes the baseline cheaper than pyuvdata's default, which favours it.
        warnings.simplefilter("ignore")
        for path in paths:
            uv = UVData()
            uv.read(str(path), file_type="uvh5", read_data=False, run_check=False)


def h5py_every_dataset(paths: list[Path]) -> None:
    def read_all(handle: h5py.File) -> dict[str, object]:
        found: dict[str, object] = {}

        def visit(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                found[name] = obj[()]

        handle["Header"].visititems(visit)
        return found

    for path in paths:
        with h5py.File(path, "r") as handle:
            read_all(handle)


def time_baseline(fn: Callable[[list[Path]], None], paths: list[Path]) -> float:
    """Seconds per file over the sample (one untimed warm-up file first: imports, JIT)."""
    fn(paths[:1])
    started = time.perf_counter()
    fn(paths)
    return (time.perf_counter() - started) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", type=int, default=288)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    parser.add_argument("--baseline-files", type=int, default=576, help="0 = every file")
    parser.add_argument("--keep", type=Path, default=None, help="generate into / reuse DIR")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    load_before = load()
    with tempfile.TemporaryDirectory(prefix="hdf5_bench_") as scratch:
        tmp = Path(scratch)
        directory = args.keep if args.keep is not None else tmp / "day"
        started = time.perf_counter()
        paths = make_day(directory, args.observations)
        generate_s = time.perf_counter() - started
        n = len(paths)
        workers = args.workers or hdr.default_workers()
        ours = time_ours(paths, tmp, args.repeat, workers)
        ours_serial = time_ours(paths, tmp, args.repeat, 1) if workers > 1 else ours
        sample = paths if args.baseline_files <= 0 else paths[:: max(n // args.baseline_files, 1)]
        per_file_pyuvdata = time_baseline(pyuvdata_loop, sample)
        per_file_h5py = time_baseline(h5py_every_dataset, sample)

    out = {
        "files": n,
        "observations": args.observations,
        "nproc": nproc(),
        "load_before": load_before,
        "load_after": load(),
        "generate_s": generate_s,
        "workers": workers,
        "ours": ours,
        "ours_workers_1": ours_serial,
        "ours_ms_per_file": 1000 * ours["total_s"] / n,
        "ours_workers_1_ms_per_file": 1000 * ours_serial["total_s"] / n,
        "baseline_sample_files": len(sample),
        "pyuvdata_ms_per_file": 1000 * per_file_pyuvdata,
        "pyuvdata_day_s": per_file_pyuvdata * n,
        "h5py_all_ms_per_file": 1000 * per_file_h5py,
        "h5py_all_day_s": per_file_h5py * n,
        "ratio_vs_pyuvdata": ours["total_s"] / (per_file_pyuvdata * n),
        "ratio_vs_h5py_all": ours["total_s"] / (per_file_h5py * n),
        "goal_s": 2.0,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"nproc={out['nproc']} load={load_before:.2f} (after {out['load_after']:.2f})  "
        f"{n} files = {args.observations} observations x {N_SUBBANDS}; generated in "
        f"{generate_s:.1f} s"
    )
    for label, run in ((f"ours, {workers} workers", ours), ("ours, 1 worker", ours_serial)):
        phases = ", ".join(
            f"{key[:-2]} {1000 * run[key]:.0f}"
            for key in ("stat_s", "headers_s", "register_s", "group_s")
        )
        print(
            f"{label:<22} {1000 * run['total_s'] / n:6.3f} ms/file  total {run['total_s']:.2f} s"
            f"  ({phases} ms; unchanged re-run {1000 * run['unchanged_rerun_s']:.0f} ms)"
        )
    print(
        f"{'pyuvdata read_data=False':<22} {out['pyuvdata_ms_per_file']:6.3f} ms/file  day "
        f"{out['pyuvdata_day_s']:.1f} s (from {len(sample)} files)  ratio "
        f"{out['ratio_vs_pyuvdata']:.3f}"
    )
    print(
        f"{'h5py, every dataset':<22} {out['h5py_all_ms_per_file']:6.3f} ms/file  day "
        f"{out['h5py_all_day_s']:.1f} s (from {len(sample)} files)  ratio "
        f"{out['ratio_vs_h5py_all']:.3f}"
    )
    verdict = "meets" if ours["total_s"] <= 2.0 else "MISSES"
    print(f"goal <= 2 s for the day: {verdict} ({ours['total_s']:.2f} s)")


if __name__ == "__main__":
    main()
