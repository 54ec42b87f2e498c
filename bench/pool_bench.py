"""Cost of checkout + `SELECT 1` + checkin through the database resource, against baselines.

Per backend (a SQLite file and the PostgreSQL server), one run, same process:
  raw DB-API, one persistent connection    the floor: no pool at all (baseline, ratio 1.0)
  raw DB-API, connect per operation        what a pool saves
  engine on NullPool                       SQLAlchemy without pooling
  engine on plain QueuePool                SQLAlchemy pooling without our instrumentation
  resource (Databases.connect)             what assets use: pool + metrics + error translation
Then throughput of 16 threads sharing a pool of 5 (max_overflow 0) through the resource.

Usage: .venv/bin/python bench/pool_bench.py [--pg-url URL] [--no-pg] [--scale 1.0]
The PostgreSQL URL defaults to CONTIMG_BENCH_PG_URL or postgres@127.0.0.1:5432/test.
Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resources.database import Databases
from resources.engines import build_engine
from resources.settings import PoolSettings

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SELECT_1 = text("SELECT 1")


def per_op(fn: Callable[[], None], n: int) -> float:
    """Seconds per call of fn, after a short warm-up."""
    for _ in range(max(5, n // 20)):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def raw_factories(url: str) -> tuple[Callable[[], object], str]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        return (lambda: sqlite3.connect(path, check_same_thread=False)), "sqlite3"
    import psycopg

    conninfo = {
        "host": parsed.host,
        "port": parsed.port or 5432,
        "user": parsed.username,
        "dbname": parsed.database,
    }
    if parsed.password:
        conninfo["password"] = parsed.password
    return (lambda: psycopg.connect(**conninfo)), "psycopg"


def bench_backend(label: str, url: str, n_pooled: int, n_connect: int) -> None:
    settings = PoolSettings()
    connect_raw, driver = raw_factories(url)

    persistent = connect_raw()

    def raw_persistent() -> None:
        cur = persistent.cursor()  # type: ignore[attr-defined]
        cur.execute("SELECT 1")
        cur.fetchone()
        cur.close()

    def raw_connect() -> None:
        conn = connect_raw()
        cur = conn.cursor()  # type: ignore[attr-defined]
        cur.execute("SELECT 1")
        cur.fetchone()
        conn.close()  # type: ignore[attr-defined]

    null_engine = build_engine(url, settings, poolclass=NullPool)
    plain_engine = build_engine(url, settings)
    db = Databases({"products": url}, settings=settings)

    def via(engine_connect: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with engine_connect() as conn:  # type: ignore[attr-defined]
                conn.execute(SELECT_1).scalar_one()

        return run

    rows = [
        (f"raw {driver}, persistent connection", per_op(raw_persistent, n_pooled)),
        (f"raw {driver}, connect per op", per_op(raw_connect, n_connect)),
        ("engine, NullPool", per_op(via(null_engine.connect), n_connect)),
        ("engine, plain QueuePool", per_op(via(plain_engine.connect), n_pooled)),
        ("resource Databases.connect", per_op(via(lambda: db.connect("products")), n_pooled)),
    ]
    persistent.close()  # type: ignore[attr-defined]
    null_engine.dispose()
    plain_engine.dispose()

    base = rows[0][1]
    print(f"\n## {label}  (pre_ping on, {n_pooled} pooled / {n_connect} unpooled iterations)")
    print(f"{'path':40s} {'us/op':>10s} {'x raw':>8s}")
    for name, sec in rows:
        print(f"{name:40s} {sec * 1e6:10.1f} {sec / base:8.2f}")
    resource = rows[-1][1]
    print(
        f"resource vs NullPool: {resource / rows[2][1]:.3f}x the time; "
        f"resource vs plain QueuePool: {resource / rows[3][1]:.2f}x"
    )


def bench_throughput(label: str, url: str, ops_per_thread: int) -> None:
    threads_n = 16
    settings = PoolSettings(pool_size=5, max_overflow=0, pool_timeout=30)
    db = Databases({"ingest": url}, settings=settings)
    with db.connect("ingest"):
        pass
    barrier = threading.Barrier(threads_n + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(ops_per_thread):
            with db.connect("ingest") as conn:
                conn.execute(SELECT_1).scalar_one()

    workers = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in workers:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - start
    total = threads_n * ops_per_thread
    status = db.pool_status("ingest")
    print(
        f"{label}: 16 threads over a pool of 5: {total} ops in {elapsed:.2f} s = "
        f"{total / elapsed:,.0f} ops/s; exhausted={status.exhausted_total}, "
        f"checked_in after={status.checked_in}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("CONTIMG_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    s = args.scale

    print(f"pool_bench  python {sys.version.split()[0]}  cpus={os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        bench_backend("SQLite (file, WAL)", sqlite_url, int(20000 * s), int(5000 * s))
        print()
        bench_throughput("SQLite", sqlite_url, int(1000 * s))
    if not args.no_pg:
        bench_backend(
            "PostgreSQL (psycopg 3, localhost TCP)", args.pg_url, int(5000 * s), int(300 * s)
        )
        print()
        bench_throughput("PostgreSQL", args.pg_url, int(300 * s))


if __name__ == "__main__":
    main()
