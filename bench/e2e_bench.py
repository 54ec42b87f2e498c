"""The user's path: the README's command end to end, against a hand loop or its compute.

1. Writes one day of N DSA-110-like images (default 288, one per 5 minutes from 00:00 UTC,
   SIZE x SIZE x 1 x 1 float32, beam-correlated noise plus point sources:
   resources/fits/synthetic.py's generator) into a temporary directory.
2. For each executor configuration, on fresh SQLite databases and a fresh DAGSTER_HOME
   (`contimg db upgrade`, `contimg init-home`, not timed): the README's backfill command for that
   one day, typed as documented, in a fresh process from the project directory:
       dg launch --job daily_products_job --partition-range D...D
   Wall time of that process; from the run's event log (DagsterInstance.get() on that home) the
   start-up (process start -> first step event), each step (first event of the step -> its
   STEP_START = step process boot, STEP_START -> STEP_SUCCESS = the step's work) and the tail
   (last step -> process exit); peak memory of the process tree: the largest single process
   (os.wait4 of the run process and of its orphans, this process being their sub-reaper) and the
   largest sum of RSS over the tree (sampled from /proc every 0.2 s).
3. The hand loop over the same files, in a fresh process: astropy `getheader` + `WCS` centre
   (`pixel_to_world` of the central pixel), `sigma_clipped_stats`, a matplotlib ZScale/asinh
   256 px thumbnail PNG, the blind sources as bench/baseline.py's `Sources` finds and
   associates them (sep, astropy, pandas; no fits, no forced photometry, no variability), one
   sqlite3 INSERT of the image and one executemany of its measurements (and a commit) per file.

Prints images/s of each, the ratio product / hand loop (process wall times), the phases.
The files are in the page cache for every measurement (written just before, read by each).

    .venv/bin/python bench/e2e_bench.py [--n 288] [--size 1024] [--costs] [--json]
        [--executor default,in_process,multiprocess] [--start-method spawn,forkserver]
    .venv/bin/python bench/e2e_bench.py --n 24 --size 4096

**The backfill case** (issue 18: "a range backfill of 365 days x 4 small images in one run costs
<= 2x its compute"), `--days D` (`--per-day P`, default 4; `--size`, default 256 here):

1. Writes D consecutive observation days from 2025-10-01, P images a day (one per 5 minutes
   from 00:00 UTC, seed = the image's index, so day 1 is the one-day case's first P images).
   `--keep DIR` reuses DIR when it holds exactly these file names at this size.
2. The README's range command over them, as typed, like the one-day case (fresh databases and
   DAGSTER_HOME, fresh process, project directory):
       dg launch --job daily_products_job --partition-range 2025-10-01...<day D>
   and the same split from the event log, each step named by its step key (whatever ops the
   code location has: an op that materializes several assets is one step), its work split at
   its first output event into body (the function up to its first result) and emit
   (materializations, check evaluations and outputs written, and the function's code after its
   first yield), with the events of each step and of the run counted by type. The run must
   leave D x P rows in each of images, image_qa and thumbnails and D daily_stats rows.
3. **Its compute** (`compute_loop`, a fresh process, no Dagster imported, one thread): the
   per-image work of the run done directly by the product's plain functions on the same files:
   `parse_fits` (validation, header, WCS, fingerprint; no metadata cache), one `read_plane`,
   `compute_stats` + `grade`, `render_thumbnail` (256 px) + `write_thumbnail`, `extract_plane`
   (the blind sources) and their measurement rows, and per day one products transaction with
   `upsert_images`, `upsert_qa`, `upsert_thumbnails` (SQLite, migrated first, not timed), then
   the sources' day by the catalogue step's functions (`record_extractions`, `associate_day`,
   `force_day` on one thread, `variability_day`). Compute = the wall time of that loop (its CPU
   time is printed too); interpreter start, imports and the first connection are not in it.
   Everything else the product does (ingest queue, registry and publication, QA report files,
   contact sheets, previews, rms plots and the sources' pictures, daily_stats, per-day metadata,
   checks, events, start-up) is overhead. Both runs print their catalogue's counts (sources,
   blind and forced measurements), which must agree.

Prints wall, compute, wall / compute, the overhead per day ((wall - compute) / D, and the same
within the steps' span, without start-up and tail), and per step boot / work = body + emit with
its events. `--compute` adds the compute loop to the one-day case; `--profile FILE` runs the
product's command under `python -m cProfile -o FILE` (same `dg` script, environment and
directory; its times are then the profiled ones, and it sees the main thread only: the
thread pools' parsing, grading and rendering show as waits).

    .venv/bin/python bench/e2e_bench.py --days 365 --per-day 4 --size 256 [--keep DIR]
    .venv/bin/python bench/e2e_bench.py --days 30 --profile /tmp/backfill.prof

`--executor` and `--start-method` take comma lists (run as CONTIMG_EXECUTOR /
CONTIMG_MP_START_METHOD); the start method applies to multiprocess only. The default,
`--executor default`, leaves CONTIMG_EXECUTOR unset: the command exactly as the README has it.
`--no-hand` skips the hand loop; `--costs` also times, alone on the same files, one read of every
plane and whole-file sha256 / xxh3; `--keep DIR` writes (or reuses) the images in DIR;
E2E_KEEP_TMP=1 keeps the temporary homes and databases; E2E_PIXEL_THREADS=N runs the product
with CONTIMG_PIXEL_THREADS=N, E2E_PIXEL_POOL=threads|processes with CONTIMG_PIXEL_POOL. Timings
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
DAY = dt.date(2025, 10, 1)
DEC = 16.3
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36


# --- data ----------------------------------------------------------------------------------


def image_name(when: dt.datetime) -> str:
    return f"{when.strftime('%Y-%m-%dT%H:%M:%S')}_dec{DEC:+.1f}.fits"


def image_times(days: int, per_day: int) -> list[dt.datetime]:
    """`per_day` images per day, one per 5 minutes from 00:00 UTC, on `days` days from DAY."""
    start = dt.datetime.combine(DAY, dt.time(0, 0), tzinfo=dt.UTC)
    return [
        start + dt.timedelta(days=d) + k * dt.timedelta(minutes=5)
        for d in range(days)
        for k in range(per_day)
    ]


def _write_one(args: tuple[str, int, int, float]) -> str:
    from resources.fits.synthetic import ImageSpec, write_image

    out, seed, size, stamp = args
    when = dt.datetime.fromtimestamp(stamp, tz=dt.UTC)
    spec = ImageSpec(date_obs=when, dec_deg=DEC, size=size, seed=seed)
    return str(write_image(Path(out) / image_name(when), spec))


def generate(out: Path, days: int, per_day: int, size: int) -> list[Path]:
    """The images of `days` x `per_day` (seed = index, so day 1 is the one-day case's)."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), k, size, t.timestamp()) for k, t in enumerate(image_times(days, per_day))]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [Path(p) for p in pool.map(_write_one, jobs, chunksize=16)]


def reusable(incoming: Path, days: int, per_day: int, size: int) -> bool:
    """Whether `incoming` holds exactly these images (names, and the size of the first)."""
    want = {image_name(t) for t in image_times(days, per_day)}
    have = {p.name for p in incoming.glob("*.fits")}
    if have != want:
        return False
    from astropy.io import fits

    header = fits.getheader(incoming / min(want))
    return header.get("NAXIS1") == size == header.get("NAXIS2")


# --- process-tree accounting ---------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree_rss(root: int, extra: set[int]) -> int:
    tree = _children_map()
    todo, total, seen = [root, *extra], 0, set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            continue
        todo.extend(tree.get(pid, []))
    return total


class Sampler(threading.Thread):
    """Largest sum of RSS over a process and its descendants (including orphans we reaped)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()
        self.orphans: set[int] = set()

    def run(self) -> None:
        me = os.getpid()
        while not self.done.wait(0.2):
            # Orphans re-parented to us (forkserver, a run's step processes): direct children.
            self.orphans = {p for p in _children_map().get(me, []) if p != self.pid}
            self.peak = max(self.peak, _tree_rss(self.pid, self.orphans))


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run `cmd`; wall seconds, exit status, output, the largest process's and tree's RSS."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    started = time.time()
    t0 = time.monotonic()
    out_path = Path(tempfile.mkstemp(prefix="e2e-out-")[1])
    with open(out_path, "w+b") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        ended = time.time()
        proc.returncode = os.waitstatus_to_exitcode(status)
        max_rss = usage.ru_maxrss * 1024
        # Orphans (e.g. a forkserver outliving its run process) come back to us: reap them.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                pid, _, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            max_rss = max(max_rss, usage.ru_maxrss * 1024)
        sampler.done.set()
        sampler.join()
        out.seek(0)
        text = out.read().decode(errors="replace")
    out_path.unlink()
    return {
        "wall_s": wall,
        "started": started,
        "ended": ended,
        "returncode": proc.returncode,
        "output": text,
        "max_process_rss_mb": max_rss / 2**20,
        "max_tree_rss_mb": max(sampler.peak, max_rss) / 2**20,
    }


# --- the product: the README's command -----------------------------------------------------


def config_label(executor: str, method: str | None) -> str:
    if executor == "default":
        from resources.settings import SETTINGS

        return f"default ({SETTINGS['CONTIMG_EXECUTOR'].default})"
    return f"{executor}+{method}" if method else executor


def product_env(base: Path, incoming: Path, executor: str, method: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    env.update(
        {
            "CONTIMG_DATA_DIR": str(base / "var"),
            "DAGSTER_HOME": str(base / "dagster_home"),
            "CONTIMG_INCOMING_DIRS": str(incoming),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    if executor != "default":  # default: the variable unset, as a user runs the README
        env["CONTIMG_EXECUTOR"] = executor
    if method:
        env["CONTIMG_MP_START_METHOD"] = method
    if "E2E_PIXEL_THREADS" in os.environ:  # the pixel pass's threads (CONTIMG_PIXEL_THREADS)
        env["CONTIMG_PIXEL_THREADS"] = os.environ["E2E_PIXEL_THREADS"]
    if "E2E_PIXEL_POOL" in os.environ:  # threads or processes (CONTIMG_PIXEL_POOL)
        env["CONTIMG_PIXEL_POOL"] = os.environ["E2E_PIXEL_POOL"]
    return env


def run_events(home: Path) -> list[tuple[float, str, str | None]]:
    """(timestamp, event type, step key) of the one run in `home`, in order; the entries of
    `context.log` (rows of the event log too) as LOG_MESSAGE."""
    import dagster as dg

    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs(limit=2)
            if len(runs) != 1:
                raise SystemExit(f"expected one run in {home}, found {len(runs)}")
            out = []
            for entry in instance.all_logs(runs[0].run_id):
                event = entry.dagster_event
                kind = event.event_type_value if event is not None else "LOG_MESSAGE"
                out.append((entry.timestamp, kind, entry.step_key))
            return out
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


def split(events: list[tuple[float, str, str | None]], started: float, ended: float) -> dict:
    """Start-up, per-step boot and work, tail, from the event log and the process times.

    Steps are named by the event log (its step keys), not by this script: an op that
    materializes several assets is one step. A step's launch is its first event after planning
    (STEP_WORKER_STARTING for multiprocess); boot = launch -> STEP_START (process start, imports,
    resource set-up); work = STEP_START -> STEP_SUCCESS, split at the step's first output event
    (ASSET_MATERIALIZATION, ASSET_CHECK_EVALUATION, STEP_OUTPUT) into `body_s` (the step's
    function up to its first result: the per-day work and whatever the function does per day)
    and `emit_s` (first output event -> STEP_SUCCESS: Dagster writing the per-partition
    materializations, check evaluations and outputs, and the function's code after its first
    yield). `events` counts the step's events by type (PLANNED ones and LOG_MESSAGE included);
    `run_events` those of the whole run. `idle_s` is the wall time during which no step was working."""
    steps: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    for ts, kind, key in events:
        if key is None:
            continue
        name = key.split("[")[0]
        per_type = counts.setdefault(name, {})
        per_type[kind] = per_type.get(kind, 0) + 1
        if kind.endswith("_PLANNED") or kind == "LOG_MESSAGE":
            continue
        step = steps.setdefault(name, {"launch": ts})
        if kind == "STEP_START":
            step["start"] = ts
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = ts
        elif kind in _OUTPUT_EVENTS and "start" in step:
            step.setdefault("first_output", ts)
    intervals = sorted((s["start"], s["end"]) for s in steps.values() if "start" in s)
    working, cursor = 0.0, float("-inf")
    for lo, hi in intervals:
        lo = max(lo, cursor)
        if hi > lo:
            working += hi - lo
            cursor = hi
    first = min(s["launch"] for s in steps.values())
    last = max(s.get("end", s["launch"]) for s in steps.values())
    run_start = next(
        (ts for ts, kind, _ in events if kind in ("PIPELINE_START", "RUN_START")), events[0][0]
    )
    run_counts: dict[str, int] = {}
    for _, kind, _ in events:
        run_counts[kind] = run_counts.get(kind, 0) + 1
    return {
        "process_to_run_start_s": run_start - started,
        "startup_s": first - started,
        "tail_s": ended - last,
        "steps_span_s": last - first,
        "working_s": working,
        "idle_s": (ended - started) - working,
        "steps": {name: _step_split(step, counts.get(name, {})) for name, step in steps.items()},
        "run_events": run_counts,
    }


_OUTPUT_EVENTS = ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION", "STEP_OUTPUT")


def _step_split(step: dict[str, float], counts: dict[str, int]) -> dict[str, Any]:
    start = step.get("start", step["launch"])
    end = step.get("end", start)
    first = min(max(step.get("first_output", end), start), end)
    return {
        "boot_s": start - step["launch"],
        "work_s": end - start,
        "body_s": first - start,
        "emit_s": end - first,
        "events": dict(sorted(counts.items())),
    }


def prepare(env: dict[str, str], commands: list[list[str]]) -> None:
    """Run `contimg` set-up commands (not timed) in the project directory."""
    for prep in commands:
        done = subprocess.run(
            [str(BIN / prep[0]), *prep[1:]],
            check=False,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(prep)} failed:\n{done.stdout}\n{done.stderr}")


def run_product(
    tmp: Path,
    incoming: Path,
    n: int,
    executor: str,
    method: str | None,
    *,
    days: int = 1,
    profile: Path | None = None,
) -> dict:
    """The README's range command over DAY ... DAY + days - 1; `n` images expected in all.

    With `profile`, the same command runs under `python -m cProfile -o PROFILE` (the `dg`
    script of the venv, same environment and directory): its times are then the profiled
    ones."""
    label = config_label(executor, method)
    base = tmp / "".join(c if c.isalnum() or c in "+_-" else "_" for c in label)
    shutil.rmtree(base, ignore_errors=True)
    env = product_env(base, incoming, executor, method)
    prepare(env, [["contimg", "db", "upgrade"], ["contimg", "init-home"]])
    first, last = DAY.isoformat(), (DAY + dt.timedelta(days=days - 1)).isoformat()
    cmd = ["dg", "launch", "--job", "daily_products_job", "--partition-range", f"{first}...{last}"]
    argv = [str(BIN / "dg"), *cmd[1:]]
    if profile is not None:
        argv = [sys.executable, "-m", "cProfile", "-o", str(profile.resolve()), *argv]
    load = os.getloadavg()[0]
    measured = run_measured(argv, env, ROOT)
    if measured["returncode"] != 0:
        raise SystemExit(f"{label}: `{' '.join(cmd)}` failed:\n{measured['output'][-4000:]}")
    catalogued = _count(base / "var", n, days)
    counts = catalogue_counts(base / "var")
    result = {
        "config": label + (" (cProfile)" if profile else ""),
        "command": " ".join(cmd),
        "days": days,
        "profile": str(profile) if profile else None,
        "env": {
            k: v for k, v in env.items() if k in ("CONTIMG_EXECUTOR", "CONTIMG_MP_START_METHOD")
        },
        "load_before": load,
        "images": catalogued,
        "catalogue": counts,
        "wall_s": measured["wall_s"],
        "images_per_s": catalogued / measured["wall_s"],
        "max_process_rss_mb": measured["max_process_rss_mb"],
        "max_tree_rss_mb": measured["max_tree_rss_mb"],
    }
    result |= split(run_events(base / "dagster_home"), measured["started"], measured["ended"])
    return result


def _count(data_dir: Path, expected: int, days: int | None = None) -> int:
    """The rows the run left (tables, not step names): `expected` images, QA rows and
    thumbnails, and with `days` that many daily_stats rows."""
    import sqlite3

    files = sorted(data_dir.rglob("products*.sqlite3"))
    if not files:
        raise SystemExit(f"no products database under {data_dir}")
    with sqlite3.connect(files[0]) as conn:
        (images,) = conn.execute("SELECT count(*) FROM images").fetchone()
        (graded,) = conn.execute("SELECT count(*) FROM image_qa").fetchone()
        (thumbs,) = conn.execute("SELECT count(*) FROM thumbnails").fetchone()
        (daily,) = conn.execute("SELECT count(*) FROM daily_stats").fetchone()
    if not images == graded == thumbs == expected:
        raise SystemExit(f"expected {expected} of each, found {images}/{graded}/{thumbs}")
    if days is not None and daily != days:
        raise SystemExit(f"expected {days} daily_stats rows, found {daily}")
    return images


def catalogue_counts(data_dir: Path) -> dict[str, int]:
    """The sources' rows a run left: sources, blind and forced measurements (the product's
    and the compute loop's are the same work, so the same counts)."""
    import sqlite3

    (path,) = sorted(data_dir.rglob("products*.sqlite3"))[:1]
    with sqlite3.connect(path) as conn:
        (sources,) = conn.execute("SELECT count(*) FROM sources").fetchone()
        blind, forced = conn.execute(
            "SELECT count(*) - coalesce(sum(forced), 0), coalesce(sum(forced), 0) FROM measurements"
        ).fetchone()
    return {"sources": sources, "blind_measurements": blind, "forced_measurements": forced}


# --- the hand loop -------------------------------------------------------------------------


def _tick(phases: dict[str, float], name: str, since: float) -> float:
    now = time.perf_counter()
    phases[name] += now - since
    return now


def hand_loop(incoming: Path, out: Path) -> dict[str, Any]:
    """What one writes without thinking about speed; runs in its own process (--hand-only)."""
    t_import = time.perf_counter()
    import sqlite3

    import numpy as np
    from astropy.io import fits
    from astropy.stats import sigma_clipped_stats
    from astropy.wcs import WCS
    from baseline import Sources, zscale_png  # bench/baseline.py, beside this script

    phases = dict.fromkeys(("header_wcs", "read_stats", "thumbnail", "sources", "insert"), 0.0)
    sources = Sources()
    imports = time.perf_counter() - t_import
    out.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(out / "hand.sqlite3")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS images (path TEXT PRIMARY KEY, date_obs TEXT, ra REAL, "
        "dec REAL, mean REAL, median REAL, std REAL, peak REAL, thumbnail TEXT)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS measurements (image TEXT, source INTEGER, ra REAL, "
        "dec REAL, flux REAL)"
    )
    conn.commit()
    t_loop = time.perf_counter()
    files = sorted(incoming.glob("*.fits"))
    for path in files:
        t = time.perf_counter()
        header = fits.getheader(path)
        wcs = WCS(header).celestial
        ny, nx = header["NAXIS2"], header["NAXIS1"]
        centre = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
        t = _tick(phases, "header_wcs", t)
        image = np.squeeze(fits.getdata(path)).astype(np.float32)
        mean, median, std = sigma_clipped_stats(image)
        peak = float(np.nanmax(image))
        t = _tick(phases, "read_stats", t)
        thumb = out / (path.stem + ".png")
        thumb.write_bytes(zscale_png(image))
        t = _tick(phases, "thumbnail", t)
        found = sources.add(image, header)
        t = _tick(phases, "sources", t)
        conn.execute(
            "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(path), header.get("DATE-OBS"), float(centre.ra.deg), float(centre.dec.deg),
             float(mean), float(median), float(std), peak, str(thumb)),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO measurements VALUES (?, ?, ?, ?, ?)",
            [(str(path), m["source"], m["ra"], m["dec"], m["flux"]) for m in found],
        )
        conn.commit()
        _tick(phases, "insert", t)
    loop = time.perf_counter() - t_loop
    (count,) = conn.execute("SELECT count(*) FROM images").fetchone()
    conn.close()
    return {"images": count, "imports_s": imports, "loop_s": loop, "phases_s": phases}


def run_hand(tmp: Path, incoming: Path) -> dict[str, Any]:
    out = tmp / "hand"
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--hand-only", str(incoming)]
    cmd += ["--hand-out", str(out)]
    measured = run_measured(cmd, dict(os.environ), ROOT)
    if measured["returncode"] != 0:
        raise SystemExit(f"hand loop failed:\n{measured['output'][-4000:]}")
    inner = json.loads(measured["output"].strip().splitlines()[-1])
    return {
        "config": "hand loop",
        "load_before": load,
        "wall_s": measured["wall_s"],
        "images_per_s": inner["images"] / measured["wall_s"],
        "max_process_rss_mb": measured["max_process_rss_mb"],
        "max_tree_rss_mb": measured["max_tree_rss_mb"],
        **inner,
    }


# --- "its compute": the product's plain functions, without Dagster ------------------------


def compute_loop(incoming: Path, out: Path) -> dict[str, Any]:
    """The work of a run, by the product's own plain functions, one process, one thread, no
    Dagster (checked: `dagster` is not imported at the end). Per image: `parse_fits`
    (validation, metadata, WCS, xxh3 fingerprint; no cache), one `read_plane`, `compute_stats`
    + `grade`, `render_thumbnail` (256 px) + `write_thumbnail`, `extract_plane` (the blind
    sources, with the image's beam) and their `measurement_rows`; per observation day, in one
    transaction of the products database (migrated SQLite, `Databases.from_env`):
    `upsert_images`, `upsert_qa`, `upsert_thumbnails`; then the sources' day as the catalogue
    step does it: `record_extractions` (the measurements' rows), `associate_day`, `force_day`
    (one pixel thread) and `variability_day`. Timed: the loop (wall and CPU), not the imports
    nor the engine's first connection. Not in it: the ingest queue, the registry and
    publication, QA report files, contact sheets, day previews, the rms plot and the sources'
    pictures, daily_stats, per-day metadata, checks, events: what the product adds around this
    work."""
    t_import = time.perf_counter()
    from collections import defaultdict

    from assets.qa.statistics import QAThresholds, compute_stats, grade
    from assets.sources.association import AssociationConfig
    from assets.sources.day import (
        MJY,
        ExtractedImage,
        VariabilityConfig,
        associate_day,
        beam_of,
        celestial_wcs,
        cell_of,
        force_day,
        measurement_rows,
        record_extractions,
        variability_day,
    )
    from assets.sources.extraction import ExtractionConfig, extract_plane
    from assets.sources.forced import ForcedConfig
    from assets.thumbnails.render import (
        render_thumbnail,
        target_size,
        thumbnail_relpath,
        write_thumbnail,
    )
    from resources.database import Databases
    from resources.fits.parser import parse_fits
    from resources.fits.pixels import read_plane
    from resources.models._common import utcnow
    from resources.repositories.products import (
        images_of_day,
        upsert_images,
        upsert_qa,
        upsert_thumbnails,
    )

    imports = time.perf_counter() - t_import
    t = time.perf_counter()
    dbs = Databases.from_env(require_schema=True)
    with dbs.begin("products") as conn:  # the engine, its pool, the schema check: set-up
        pass
    setup = time.perf_counter() - t
    thresholds, wanted = QAThresholds(), QAThresholds().to_dict()
    phases = dict.fromkeys(
        ("parse", "read", "stats_grade", "thumbnail", "sources", "rows", "catalogue"), 0.0
    )
    extraction, association = ExtractionConfig(), AssociationConfig()
    forced, cuts = ForcedConfig(), VariabilityConfig()
    by_day: dict[dt.date, list[Path]] = defaultdict(list)
    for path in sorted(incoming.glob("*.fits")):
        by_day[dt.date.fromisoformat(path.name[:10])].append(path)
    count = 0
    cpu0, t_loop = time.process_time(), time.perf_counter()
    for day, paths in by_day.items():
        metas, qa, thumbs, found = [], [], [], {}
        for path in paths:
            t = time.perf_counter()
            meta = parse_fits(path)
            t = _tick(phases, "parse", t)
            plane = read_plane(meta.path, meta.hdu_index)
            t = _tick(phases, "read", t)
            stats = compute_stats(plane, source=meta.path)
            result = grade(
                stats,
                meta.beam_major_arcsec,
                meta.beam_minor_arcsec,
                meta.beam_pa_deg,
                thresholds,
            )
            t = _tick(phases, "stats_grade", t)
            png = render_thumbnail(plane, size=256, source=meta.path)
            dest = out / "thumbnails" / thumbnail_relpath(day, meta.path)
            write_thumbnail(png, dest)
            t = _tick(phases, "thumbnail", t)
            beam = beam_of(
                meta.beam_major_arcsec,
                meta.beam_minor_arcsec,
                meta.beam_pa_deg,
                meta.cellsize_arcsec or 0.0,
            )
            if beam is not None:
                wcs = celestial_wcs(str(meta.path), meta.hdu_index)
                found[str(meta.path)] = (extract_plane(plane, beam, extraction), wcs)
            _tick(phases, "sources", t)
            metas.append(meta)
            qa.append((meta, stats, result))
            thumbs.append((meta, dest, target_size(plane.shape, 256)))
        t = time.perf_counter()
        with dbs.begin("products") as conn:
            ids = upsert_images(conn, metas)
            now = utcnow()
            upsert_qa(
                conn,
                [
                    {
                        "image_id": ids[m.path],
                        "grade": r.grade,
                        "rms_jy": st.rms,
                        "peak_jy": st.peak,
                        "dynamic_range": st.dynamic_range,
                        "nan_fraction": st.nan_fraction,
                        "n_pixels": st.n_pixels,
                        "beam_ok": _beam_ok(m.beam_major_arcsec, m.beam_minor_arcsec),
                        "reasons": list(r.reasons),
                        "thresholds": wanted,
                        "computed_at": now,
                        "source_fingerprint": m.fingerprint,
                    }
                    for m, st, r in qa
                ],
            )
            upsert_thumbnails(
                conn,
                [
                    {
                        "image_id": ids[m.path],
                        "path": str(dest),
                        "width": width,
                        "height": height,
                        "source_fingerprint": m.fingerprint,
                        "created_at": now,
                    }
                    for m, dest, (width, height) in thumbs
                ],
            )
            images = images_of_day(conn, day)
        t = _tick(phases, "rows", t)
        done = []
        for image in images:
            if image.path in found:
                sources, wcs = found[image.path]
                rows = measurement_rows(image, sources, wcs, cell_of(wcs))
                rms = float(sources.rms_median) * MJY
                done.append(ExtractedImage(image, rows=rows, rms_median_mjy=rms))
        record_extractions(dbs, day, done, [], extraction)
        assoc = associate_day(dbs, day, association)
        new_ids = assoc.new_source_ids
        touched = set(assoc.touched_source_ids)
        touched.update(force_day(dbs, day, new_ids, forced, threads=1).touched_source_ids)
        variability_day(dbs, day, touched, new_ids, cuts)
        _tick(phases, "catalogue", t)
        count += len(paths)
    loop, cpu = time.perf_counter() - t_loop, time.process_time() - cpu0
    if "dagster" in sys.modules:
        raise SystemExit("the compute loop imported dagster")
    return {
        "images": count,
        "days": len(by_day),
        "imports_s": imports,
        "setup_s": setup,
        "loop_s": loop,
        "loop_cpu_s": cpu,
        "phases_s": phases,
    }


def _beam_ok(major: float | None, minor: float | None) -> bool:
    """As the QA asset's `beam_ok` column (assets/qa/grading.py)."""
    return major is not None and minor is not None and 0 < minor <= major


def run_compute(tmp: Path, incoming: Path) -> dict[str, Any]:
    """`compute_loop` in a fresh process, on its own migrated databases (not timed)."""
    base = tmp / "compute"
    shutil.rmtree(base, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    env |= {"CONTIMG_DATA_DIR": str(base / "var"), "PATH": f"{BIN}{os.pathsep}{env['PATH']}"}
    prepare(env, [["contimg", "db", "upgrade"]])
    load = os.getloadavg()[0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compute-only", str(incoming)]
    measured = run_measured([*cmd, "--compute-out", str(base)], env, ROOT)
    if measured["returncode"] != 0:
        raise SystemExit(f"compute loop failed:\n{measured['output'][-4000:]}")
    inner = json.loads(measured["output"].strip().splitlines()[-1])
    _count(base / "var", inner["images"])
    return {
        "load_before": load,
        "process_wall_s": measured["wall_s"],
        **inner,
        "catalogue": catalogue_counts(base / "var"),
    }


# --- the known remaining costs, measured alone on the same files ---------------------------


def known_costs(incoming: Path) -> dict[str, float]:
    """Seconds for the whole day, one core: one read of every plane (memory-mapped, one pass),
    whole-file sha256 and whole-file xxh3_128 of every file (all from the page cache)."""
    import hashlib

    import numpy as np
    import xxhash
    from astropy.io import fits

    files = sorted(incoming.glob("*.fits"))
    out: dict[str, float] = {}
    t = time.perf_counter()
    for path in files:
        with fits.open(path, memmap=True) as hdul:
            float(np.nanmax(hdul[0].data))
    out["read_plane_once_s"] = time.perf_counter() - t
    for name, new in (("sha256", hashlib.sha256), ("xxh3_128", xxhash.xxh3_128)):
        t = time.perf_counter()
        for path in files:
            digest = new()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            digest.hexdigest()
        out[f"{name}_whole_files_s"] = time.perf_counter() - t
    return out


# --- report --------------------------------------------------------------------------------


def report(results: list[dict], hand: dict | None, args: argparse.Namespace) -> None:
    print(
        f"\n{args.n} images of {args.size}x{args.size} float32, {os.cpu_count()} CPUs, "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    head = f"{'config':<26} {'load':>5} {'wall s':>8} {'img/s':>7} {'× hand':>7} "
    print(head + f"{'start-up':>9} {'tail':>6} {'max proc MB':>12} {'max tree MB':>12}")
    rows = ([hand] if hand else []) + results
    for r in rows:
        ratio = r["wall_s"] / hand["wall_s"] if hand else float("nan")
        startup = r.get("startup_s", r.get("imports_s", 0.0))
        print(
            f"{r['config']:<26} {r['load_before']:>5.2f} {r['wall_s']:>8.1f} "
            f"{r['images_per_s']:>7.2f} {ratio:>7.2f} {startup:>9.1f} {r.get('tail_s', 0):>6.1f} "
            f"{r['max_process_rss_mb']:>12.0f} {r['max_tree_rss_mb']:>12.0f}"
        )
    if hand:
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in hand["phases_s"].items())
        print(
            f"\nhand loop: imports {hand['imports_s']:.1f} s, loop {hand['loop_s']:.1f} s: {phases}"
        )
    for r in results:
        steps = ", ".join(
            f"{k} {v['boot_s']:.1f}+{v['work_s']:.1f} s" for k, v in r["steps"].items()
        )
        print(
            f"{r['config']}: process -> RUN_START {r['process_to_run_start_s']:.1f} s, "
            f"steps span {r['steps_span_s']:.1f} s, a step working {r['working_s']:.1f} s, "
            f"none working {r['idle_s']:.1f} s (boot+work: {steps})"
        )


def backfill_report(results: list[dict], compute: dict, args: argparse.Namespace) -> None:
    """Wall, compute, wall / compute, overhead per day, and the split from the event log."""
    days, loop = args.days, compute["loop_s"]
    print(
        f"\n{days} days x {args.per_day} images of {args.size}x{args.size} float32, "
        f"{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.2f}"
    )
    phases = ", ".join(f"{k} {v:.2f}" for k, v in compute["phases_s"].items())
    print(
        f"compute (load before {compute['load_before']:.2f}): {loop:.2f} s wall, "
        f"{compute['loop_cpu_s']:.2f} s CPU, {1e3 * loop / compute['images']:.1f} ms/image "
        f"({phases} s; imports {compute['imports_s']:.1f} s, set-up {compute['setup_s']:.2f} s, "
        f"process {compute['process_wall_s']:.1f} s, none of it counted)"
    )
    for r in results:
        inner = r["steps_span_s"]
        print(
            f"{r['config']} (load before {r['load_before']:.2f}): wall {r['wall_s']:.1f} s, "
            f"compute {loop:.2f} s, wall / compute {r['wall_s'] / loop:.2f}, overhead "
            f"{1e3 * (r['wall_s'] - loop) / days:.0f} ms/day "
            f"({1e3 * (inner - loop) / days:.0f} ms/day within the steps' span); "
            f"start-up {r['startup_s']:.1f} s, steps {inner:.1f} s, tail {r['tail_s']:.1f} s"
        )
        for name, step in r["steps"].items():
            events = ", ".join(f"{k} {v}" for k, v in step["events"].items())
            print(
                f"  {name}: boot {step['boot_s']:.2f} s, work {step['work_s']:.2f} s "
                f"({1e3 * step['work_s'] / days:.0f} ms/day) = body {step['body_s']:.2f} s "
                f"+ emit {step['emit_s']:.2f} s ({1e3 * step['emit_s'] / days:.0f} ms/day); "
                f"events: {events}"
            )
        total = sum(r["run_events"].values())
        print(f"  run: {total} events ({total / days:.1f}/day)")
        same = "the same as" if r["catalogue"] == compute["catalogue"] else "NOT the same as"
        print(f"  catalogue: {r['catalogue']}, {same} the compute loop's {compute['catalogue']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=288)
    parser.add_argument("--size", type=int, help="pixels a side (1024; with --days 256)")
    parser.add_argument("--days", type=int, help="the backfill case: this many days")
    parser.add_argument("--per-day", type=int, default=4, help="images per day (--days)")
    parser.add_argument("--executor", default="default")
    parser.add_argument("--start-method", default="spawn")
    parser.add_argument("--no-hand", action="store_true")
    parser.add_argument("--compute", action="store_true", help="also the compute loop (--days)")
    parser.add_argument("--costs", action="store_true", help="also time reads and hashes alone")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the images in this directory")
    parser.add_argument("--profile", type=Path, help="run the product under cProfile to this")
    parser.add_argument("--hand-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hand-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--compute-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--compute-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand_only:
        print(json.dumps(hand_loop(args.hand_only, args.hand_out)))
        return
    if args.compute_only:
        print(json.dumps(compute_loop(args.compute_only, args.compute_out)))
        return
    backfill = args.days is not None
    days, per_day = (args.days, args.per_day) if backfill else (1, args.n)
    args.size = args.size or (256 if backfill else 1024)
    if per_day > 288:
        raise SystemExit("at most 288 images (one per 5 minutes) fit in one day")
    if days < 1 or DAY + dt.timedelta(days=days - 1) > dt.datetime.now(dt.UTC).date():
        raise SystemExit(f"--days: 1 to {(dt.datetime.now(dt.UTC).date() - DAY).days + 1}")
    n = days * per_day
    args.days, args.per_day = days, per_day

    tmp = Path(tempfile.mkdtemp(prefix="contimg-e2e-"))
    incoming = args.keep or tmp / "incoming"
    try:
        if not reusable(incoming, days, per_day, args.size):
            shutil.rmtree(incoming, ignore_errors=True)
            t0 = time.monotonic()
            generate(incoming, days, per_day, args.size)
            print(f"wrote {n} images in {time.monotonic() - t0:.0f} s to {incoming}")
        configs = []
        for executor in args.executor.split(","):
            methods = args.start_method.split(",") if executor == "multiprocess" else [None]
            configs += [(executor, m) for m in methods]
        results = []
        for executor, method in configs:
            result = run_product(
                tmp, incoming, n, executor, method, days=days, profile=args.profile
            )
            print(
                f"  {result['config']}: {result['wall_s']:.1f} s "
                f"(load before {result['load_before']:.2f})",
                flush=True,
            )
            results.append(result)
        compute = run_compute(tmp, incoming) if backfill or args.compute else None
        if compute:
            print(
                f"  compute: {compute['loop_s']:.2f} s (load before {compute['load_before']:.2f})"
            )
            for r in results:
                r["compute_s"] = compute["loop_s"]
                r["ratio_vs_compute"] = r["wall_s"] / compute["loop_s"]
                r["overhead_ms_per_day"] = 1e3 * (r["wall_s"] - compute["loop_s"]) / days
        hand = None if args.no_hand or backfill else run_hand(tmp, incoming)
        if hand:
            print(f"  hand loop: {hand['wall_s']:.1f} s (load before {hand['load_before']:.2f})")
            for r in results:
                r["ratio_vs_hand"] = r["wall_s"] / hand["wall_s"]
        costs = known_costs(incoming) if args.costs else None
        if args.json:
            print(json.dumps({"n": n, "days": days, "per_day": per_day, "size": args.size,
                              "cpus": os.cpu_count(), "results": results, "hand": hand,
                              "compute": compute, "costs": costs}, indent=2))  # fmt: skip
        elif backfill:
            backfill_report(results, compute, args)
        else:
            report(results, hand, args)
            if compute:
                backfill_report(results, compute, args)
        if costs and not args.json:
            print("alone, one core: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))
    finally:
        if not os.environ.get("E2E_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
