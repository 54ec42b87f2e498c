"""The user's path: one observation day end to end, the README's command against a hand loop.

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
   256 px thumbnail PNG, one sqlite3 INSERT (and commit) per file.

Prints images/s of each, the ratio product / hand loop (process wall times), the phases.
The files are in the page cache for every measurement (written just before, read by each).

    .venv/bin/python bench/e2e_bench.py [--n 288] [--size 1024] [--costs] [--json]
        [--executor default,in_process,multiprocess] [--start-method spawn,forkserver]
    .venv/bin/python bench/e2e_bench.py --n 24 --size 4096

`--executor` and `--start-method` take comma lists (run as CONTIMG_EXECUTOR /
CONTIMG_MP_START_METHOD); the start method applies to multiprocess only. The default,
`--executor default`, leaves CONTIMG_EXECUTOR unset: the command exactly as the README has it.
`--no-hand` skips the hand loop; `--costs` also times, alone on the same files, one read of every
plane and whole-file sha256 / xxh3; `--keep DIR` writes (or reuses) the images in DIR;
E2E_KEEP_TMP=1 keeps the temporary homes and databases. Timings are printed, never asserted.
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
STEPS = ("fits_metadata", "image_thumbnails", "image_qa", "pipeline_stats")
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36


# --- data ----------------------------------------------------------------------------------


def _write_one(args: tuple[str, int, int]) -> str:
    from resources.fits.synthetic import ImageSpec, write_image

    out, k, size = args
    when = dt.datetime.combine(DAY, dt.time(0, 0), tzinfo=dt.UTC) + k * dt.timedelta(minutes=5)
    spec = ImageSpec(date_obs=when, dec_deg=DEC, size=size, seed=k)
    name = f"{when.strftime('%Y-%m-%dT%H:%M:%S')}_dec{DEC:+.1f}.fits"
    return str(write_image(Path(out) / name, spec))


def generate(out: Path, n: int, size: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [Path(p) for p in pool.map(_write_one, [(str(out), k, size) for k in range(n)])]


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
    return env


def run_events(home: Path) -> list[tuple[float, str, str | None]]:
    """(timestamp, event type, step key) of the one run in `home`, in order."""
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
                if event is not None:
                    out.append((entry.timestamp, event.event_type_value, entry.step_key))
            return out
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


def split(events: list[tuple[float, str, str | None]], started: float, ended: float) -> dict:
    """Start-up, per-step boot and work, tail, from the event log and the process times.

    A step's launch is its first event after planning (STEP_WORKER_STARTING for multiprocess);
    boot = launch -> STEP_START (process start, imports, resource set-up); work = STEP_START ->
    STEP_SUCCESS. `idle_s` is the wall time during which no step was working."""
    steps: dict[str, dict[str, float]] = {}
    for ts, kind, key in events:
        if key is None or kind.endswith("_PLANNED"):
            continue
        step = steps.setdefault(key.split("[")[0], {"launch": ts})
        if kind == "STEP_START":
            step["start"] = ts
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = ts
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
    return {
        "process_to_run_start_s": run_start - started,
        "startup_s": first - started,
        "tail_s": ended - last,
        "steps_span_s": last - first,
        "working_s": working,
        "idle_s": (ended - started) - working,
        "steps": {
            name: {
                "boot_s": step.get("start", step["launch"]) - step["launch"],
                "work_s": step.get("end", step["launch"]) - step.get("start", step["launch"]),
            }
            for name, step in steps.items()
        },
    }


def run_product(tmp: Path, incoming: Path, n: int, executor: str, method: str | None) -> dict:
    label = config_label(executor, method)
    base = tmp / "".join(c if c.isalnum() or c in "+_-" else "_" for c in label)
    shutil.rmtree(base, ignore_errors=True)
    env = product_env(base, incoming, executor, method)
    for prep in (["contimg", "db", "upgrade"], ["contimg", "init-home"]):
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
    day = DAY.isoformat()
    cmd = ["dg", "launch", "--job", "daily_products_job", "--partition-range", f"{day}...{day}"]
    load = os.getloadavg()[0]
    measured = run_measured([str(BIN / "dg"), *cmd[1:]], env, ROOT)
    if measured["returncode"] != 0:
        raise SystemExit(f"{label}: `{' '.join(cmd)}` failed:\n{measured['output'][-4000:]}")
    catalogued = _count(base / "var", n)
    result = {
        "config": label,
        "command": " ".join(cmd),
        "env": {
            k: v for k, v in env.items() if k in ("CONTIMG_EXECUTOR", "CONTIMG_MP_START_METHOD")
        },
        "load_before": load,
        "images": catalogued,
        "wall_s": measured["wall_s"],
        "images_per_s": catalogued / measured["wall_s"],
        "max_process_rss_mb": measured["max_process_rss_mb"],
        "max_tree_rss_mb": measured["max_tree_rss_mb"],
    }
    result |= split(run_events(base / "dagster_home"), measured["started"], measured["ended"])
    return result


def _count(data_dir: Path, expected: int) -> int:
    import sqlite3

    files = sorted(data_dir.rglob("products*.sqlite3"))
    if not files:
        raise SystemExit(f"no products database under {data_dir}")
    with sqlite3.connect(files[0]) as conn:
        (images,) = conn.execute("SELECT count(*) FROM images").fetchone()
        (graded,) = conn.execute("SELECT count(*) FROM image_qa").fetchone()
        (thumbs,) = conn.execute("SELECT count(*) FROM thumbnails").fetchone()
    if not images == graded == thumbs == expected:
        raise SystemExit(f"expected {expected} of each, found {images}/{graded}/{thumbs}")
    return images


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
    from baseline import zscale_png  # bench/baseline.py, beside this script

    phases = dict.fromkeys(("header_wcs", "read_stats", "thumbnail", "insert"), 0.0)
    imports = time.perf_counter() - t_import
    out.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(out / "hand.sqlite3")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS images (path TEXT PRIMARY KEY, date_obs TEXT, ra REAL, "
        "dec REAL, mean REAL, median REAL, std REAL, peak REAL, thumbnail TEXT)"
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
        conn.execute(
            "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(path), header.get("DATE-OBS"), float(centre.ra.deg), float(centre.dec.deg),
             float(mean), float(median), float(std), peak, str(thumb)),
        )  # fmt: skip
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=288)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--executor", default="default")
    parser.add_argument("--start-method", default="spawn")
    parser.add_argument("--no-hand", action="store_true")
    parser.add_argument("--costs", action="store_true", help="also time reads and hashes alone")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the images in this directory")
    parser.add_argument("--hand-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--hand-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand_only:
        print(json.dumps(hand_loop(args.hand_only, args.hand_out)))
        return
    if args.n > 288:
        raise SystemExit("--n: at most 288 images (one per 5 minutes) fit in one day")

    tmp = Path(tempfile.mkdtemp(prefix="contimg-e2e-"))
    incoming = args.keep or tmp / "incoming"
    try:
        if len(list(incoming.glob("*.fits"))) != args.n:
            shutil.rmtree(incoming, ignore_errors=True)
            t0 = time.monotonic()
            generate(incoming, args.n, args.size)
            print(f"wrote {args.n} images in {time.monotonic() - t0:.0f} s to {incoming}")
        configs = []
        for executor in args.executor.split(","):
            methods = args.start_method.split(",") if executor == "multiprocess" else [None]
            configs += [(executor, m) for m in methods]
        results = []
        for executor, method in configs:
            result = run_product(tmp, incoming, args.n, executor, method)
            print(
                f"  {result['config']}: {result['wall_s']:.1f} s "
                f"(load before {result['load_before']:.2f})",
                flush=True,
            )
            results.append(result)
        hand = None if args.no_hand else run_hand(tmp, incoming)
        if hand:
            print(f"  hand loop: {hand['wall_s']:.1f} s (load before {hand['load_before']:.2f})")
            for r in results:
                r["ratio_vs_hand"] = r["wall_s"] / hand["wall_s"]
        costs = known_costs(incoming) if args.costs else None
        if args.json:
            print(json.dumps({"n": args.n, "size": args.size, "cpus": os.cpu_count(),
                              "results": results, "hand": hand, "costs": costs}, indent=2))  # fmt: skip
        else:
            report(results, hand, args)
            if costs:
                print("alone, one core: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))
    finally:
        if not os.environ.get("E2E_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
