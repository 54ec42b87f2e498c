"""Throughput of the daily pipeline through Celery workers: images/s with 1, 2 and 4 workers.

For each worker count W, on a fresh contimg database (all five logical databases in one
PostgreSQL database) and the production Dagster instance (PostgreSQL storage, `database` pool
limit 4):
  - start W Celery workers (one pool process each) with the documented command;
  - launch one run of `daily_products_job` per observation day, all at once, each run in its own
    process (as the daemon does), through the Celery executor;
  - images/s = images catalogued / (last run end - first run start), from Dagster's run records
    (so interpreter start-up of the launching processes is not counted).
The ratio is against W=1 in the same invocation. Timings are printed, never asserted.

Usage: .venv/bin/python bench/scale_bench.py [--days 4] [--per-day 12] [--size 256]
       [--workers 1,2,4]
Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (as the tests do).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from resources.metrics_bootstrap import ensure_multiprocess_dir

ensure_multiprocess_dir()

import dagster as dg

from resources import engines
from resources.fits.synthetic import generate_sample_data
from resources.settings import DATABASE_NAMES
from tests.fixtures_pipeline import migrate_all
from tests.pipeline_defs.scale_support import (
    REDIS_URL,
    celery_workers,
    contimg_pg_env,
    pg_query,
    production_env,
    write_production_home,
)
from tests.services import pg_admin_url, temporary_pg_database

START = dt.date(2025, 10, 1)


def launch(days: list[str], env: dict[str, str]) -> list[str]:
    """One run per day, all at once; returns the run ids."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pipeline_defs.load_driver", "--partition", day]
            + ["--home", env["DAGSTER_HOME"], "--kind", "celery"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for day in days
    ]
    run_ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"launcher failed:\n{err[-3000:]}")
        summary = json.loads(out.strip().splitlines()[-1])
        if not summary["success"]:
            raise SystemExit(f"run failed: {summary}")
        run_ids.append(summary["run_id"])
    return run_ids


def measure(workers: int, days: list[str], base_env: dict[str, str], tmp: Path) -> tuple:
    with temporary_pg_database(prefix="contimg_scale") as db:
        url = pg_admin_url(database=db)
        migrate_all(dict.fromkeys(DATABASE_NAMES, url))
        engines.dispose_all()
        env = {**base_env, **contimg_pg_env(url)}
        env["CONTIMG_THUMBNAIL_DIR"] = str(tmp / f"thumbs-{workers}")
        with celery_workers(tmp / f"celery-{workers}", workers=workers, env=env) as pool:
            env["CONTIMG_CELERY_QUEUE"] = pool.queue
            run_ids = launch(days, env)
        with dg.DagsterInstance.get() as instance:
            records = [instance.get_run_record_by_id(r) for r in run_ids]
        start = min(r.start_time for r in records if r and r.start_time)
        end = max(r.end_time for r in records if r and r.end_time)
        images = int(pg_query(db, "SELECT count(*) FROM images")[0][0])
    return images, end - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--per-day", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="contimg-scale-bench-"))
    incoming = tmp / "incoming"
    files = generate_sample_data(
        incoming, days=args.days, start=START, per_day=args.per_day, size=args.size, broken=False
    )
    days = [(START + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
    print(
        f"{len(files)} images of {args.size}x{args.size} over {args.days} days; "
        f"{os.cpu_count()} CPUs; one run per day, all launched at once"
    )
    with temporary_pg_database(prefix="contimg_scale_dagster") as storage:
        os.environ.update(production_env(storage))
        write_production_home(tmp / "dagster_home")
        base_env = dict(os.environ)
        base_env.update(
            {
                "CONTIMG_DATA_DIR": str(tmp / "var"),
                "CONTIMG_INCOMING_DIRS": str(incoming),
                "CONTIMG_EXECUTOR": "celery",
                "CONTIMG_CELERY_BROKER": REDIS_URL,
                "CONTIMG_CELERY_BACKEND": REDIS_URL,
            }
        )
        results = []
        for workers in counts:
            started = time.monotonic()
            images, seconds = measure(workers, days, base_env, tmp)
            results.append((workers, images, seconds))
            print(
                f"  {workers} worker(s): {images} images in {seconds:.1f} s "
                f"({time.monotonic() - started:.0f} s with start-up)",
                flush=True,
            )
    base = results[0][1] / results[0][2]
    print(f"\n{'workers':>8} {'images/s':>10} {'ratio vs 1':>11}")
    for workers, images, seconds in results:
        rate = images / seconds
        print(f"{workers:>8} {rate:>10.2f} {rate / base:>11.2f}")


if __name__ == "__main__":
    main()
