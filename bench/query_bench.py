"""Latency of the catalogue queries (`resources.repositories.products`) at 100,000 images.

Fills a fresh products database (migrated to head with `migrations.runner.upgrade`, so the
indexes are the real ones) with DSA-110-like rows: one image per 5 minutes in each of three
declination strips (+16.3, +54.6, +65.7 deg, a few arcmin of jitter), RA = local sidereal time at
OVRO (drifting 360 deg per sidereal day), a QA row per image (about 85 % good, 12 % warn, 3 %
fail) and a thumbnail row. Then times each query form through the repository functions (result
rows turned into dataclasses included) and prints p50/p95 per backend, plus ratios against a
baseline run in the same process: the cone search without its Dec-band / RA-window prefilter
(every row with a position is fetched and tested exactly), and the same with the pole case.

Backends: a SQLite file in a temporary directory, and a temporary PostgreSQL database created on
127.0.0.1:5432 (user postgres, trust auth) and dropped at the end. The SQLite database is not
ANALYZEd (a production file usually is not either); PostgreSQL is ANALYZEd once after the load,
as autovacuum would do.

    .venv/bin/python bench/query_bench.py [--rows 100000] [--repeat 60] [--backends sqlite postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from migrations import runner
from resources.fits.synthetic import local_sidereal_deg
from resources.models._common import utcnow
from resources.repositories.products import IMAGES, QA, THUMBS, ImageFilter, get_image, list_images
from resources.repositories.sky import Cone

STRIPS = (16.3, 54.6, 65.7)
CADENCE = dt.timedelta(minutes=5)
START = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def image_rows(
    n: int, seed: int = 1
) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(image, qa, thumbnail) rows; ids are assigned here so QA rows can reference them."""
    rng = random.Random(seed)
    i = 0
    step = 0
    while i < n:
        when = START + step * CADENCE
        lst = local_sidereal_deg(when)
        for strip in STRIPS:
            if i >= n:
                break
            i += 1
            day = when.date()
            path = (
                f"/data/dsa110/images/{day:%Y-%m-%d}/{when:%Y-%m-%dT%H:%M:%S}_dec{strip:+.1f}.fits"
            )
            mjd = when.timestamp() / 86400.0 + 40587.0
            u = rng.random()
            grade = "good" if u < 0.85 else ("warn" if u < 0.97 else "fail")
            rms = rng.lognormvariate(math.log(6e-4), 0.3) * (1 if grade != "fail" else 20)
            image = {
                "id": i,
                "path": path,
                "size_bytes": 2_101_440,
                "mtime_ns": int(when.timestamp() * 1e9) + 600_000_000_000,
                "fingerprint": f"{i:032x}",
                "hdu_index": 0,
                "naxis": [512, 512, 1, 1],
                "bitpix": -32,
                "width": 512,
                "height": 512,
                "ra_deg": (lst + rng.uniform(-0.01, 0.01)) % 360.0,
                "dec_deg": strip + rng.uniform(-0.05, 0.05),
                "cellsize_arcsec": 4.0,
                "freq_hz": 1.405e9,
                "bandwidth_hz": 187.5e6,
                "stokes": "I",
                "beam_major_arcsec": 20.0,
                "beam_minor_arcsec": 12.0,
                "beam_pa_deg": 15.0,
                "date_obs": when,
                "mjd_obs": mjd,
                "obs_date": day,
                "telescope": "DSA-110",
                "object": f"strip{strip:+.1f}",
                "bunit": "JY/BEAM",
                "warnings": [],
                "created_at": when,
                "updated_at": when,
            }
            qa = {
                "image_id": i,
                "grade": grade,
                "rms_jy": rms,
                "peak_jy": rms * rng.uniform(50, 500),
                "dynamic_range": rng.uniform(50, 500) if grade != "fail" else rng.uniform(1, 9),
                "nan_fraction": 0.0,
                "n_pixels": 262_144,
                "beam_ok": True,
                "reasons": [] if grade == "good" else [f"{grade}: synthetic reason"],
                "thresholds": {},
                "computed_at": when,
                "source_fingerprint": image["fingerprint"],
            }
            thumb = {
                "image_id": i,
                "path": f"/var/thumbnails/{day:%Y-%m-%d}/{i}.png",
                "width": 256,
                "height": 256,
                "source_fingerprint": image["fingerprint"],
                "created_at": when,
            }
            yield image, qa, thumb
        step += 1


def fill(engine: Engine, n: int) -> float:
    started = time.perf_counter()
    batch: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []

    def flush(conn: Connection) -> None:
        conn.execute(insert(IMAGES), [b[0] for b in batch])
        conn.execute(insert(QA), [b[1] for b in batch])
        conn.execute(insert(THUMBS), [b[2] for b in batch])
        batch.clear()

    with engine.begin() as conn:
        for rows in image_rows(n):
            batch.append(rows)
            if len(batch) >= 5000:
                flush(conn)
        if batch:
            flush(conn)
    return time.perf_counter() - started


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="contimg_qbench_") as tmp:
        yield f"sqlite:///{Path(tmp) / 'products.sqlite3'}"


@contextmanager
def postgres_url() -> Iterator[str]:
    admin = create_engine(PG_ADMIN, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    name = f"contimg_qbench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return p50 * 1e3, p95 * 1e3


def timed(fn: Callable[[int], int], repeat: int) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, mean rows) of `fn(k)` for k = 0..repeat-1 after two warm-up calls."""
    fn(0)
    fn(1)
    samples: list[float] = []
    rows: list[int] = []
    for k in range(repeat):
        t0 = time.perf_counter()
        rows.append(fn(k))
        samples.append(time.perf_counter() - t0)
    p50, p95 = percentiles(samples)
    return p50, p95, statistics.fmean(rows)


def query_forms(conn: Connection, n: int) -> dict[str, Callable[[int], int]]:
    days = max(1, int(n / (len(STRIPS) * 288)))
    rng = random.Random(7)
    day_of = [START.date() + dt.timedelta(days=rng.randrange(days)) for _ in range(1000)]
    ras = [rng.uniform(5, 355) for _ in range(1000)]
    strips = [rng.choice(STRIPS) for _ in range(1000)]
    paths = [
        conn.execute(
            IMAGES.select().with_only_columns(IMAGES.c.path).where(IMAGES.c.id == i)
        ).scalar_one()
        for i in (rng.randrange(1, n + 1) for _ in range(200))
    ]

    def one_day(k: int) -> int:
        return len(list_images(conn, ImageFilter(date=day_of[k])))

    def day_range(k: int) -> int:
        first = day_of[k]
        flt = ImageFilter(date_from=first, date_to=first + dt.timedelta(days=6), limit=100)
        return len(list_images(conn, flt))

    def cone(k: int, *, prefilter: bool = True) -> int:
        flt = ImageFilter(cone=Cone(ras[k], strips[k], 1.0))
        return len(list_images(conn, flt, prefilter=prefilter))

    def cone_wrap(k: int) -> int:
        ra = (359.6 + 0.8 * (k % 10) / 10) % 360.0
        return len(list_images(conn, ImageFilter(cone=Cone(ra, strips[k], 1.0))))

    def cone_one_day(k: int) -> int:
        flt = ImageFilter(date=day_of[k], cone=Cone(ras[k], strips[k], 2.0))
        return len(list_images(conn, flt))

    def grade_fail(k: int) -> int:
        first = day_of[k]
        flt = ImageFilter(
            date_from=first, date_to=first + dt.timedelta(days=29), grades=("fail",), limit=100
        )
        return len(list_images(conn, flt))

    def grade_only(k: int) -> int:
        return len(list_images(conn, ImageFilter(grades=("fail",), limit=100, offset=k)))

    def box(k: int) -> int:
        flt = ImageFilter(
            ra_min=ras[k], ra_max=ras[k] + 4.0, dec_min=strips[k] - 1, dec_max=strips[k] + 1
        )
        return len(list_images(conn, flt))

    def newest(k: int) -> int:
        return len(list_images(conn, ImageFilter(descending=True, limit=100, offset=k)))

    def show(k: int) -> int:
        return int(get_image(conn, paths[k % len(paths)]) is not None)

    return {
        "one-day listing (all ~864 rows)": one_day,
        "7-day range, limit 100": day_range,
        "cone r=1 deg (no date)": cone,
        "cone r=1 deg across RA=0": cone_wrap,
        "cone r=2 deg within one day": cone_one_day,
        "grade=fail over 30 days, limit 100": grade_fail,
        "grade=fail, no date, limit 100": grade_only,
        "box 4 x 2 deg (no date)": box,
        "newest first, limit 100": newest,
        "show by path": show,
        "BASELINE cone r=1 deg without prefilter": lambda k: cone(k, prefilter=False),
    }


def explain(conn: Connection, flt: ImageFilter) -> str:
    from resources.repositories.products import images_select

    stmt = images_select(flt, conn.dialect.name)
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    rows = conn.exec_driver_sql(prefix + str(compiled)).all()
    return "\n".join("    " + " | ".join(str(c) for c in r) for r in rows)


def run_backend(name: str, url: str, n: int, repeat: int, show_plans: bool) -> dict[str, tuple]:
    runner.upgrade("products", url, backup=False)
    engine = create_engine(url, poolclass=NullPool)
    seconds = fill(engine, n)
    load = os.getloadavg()[0]
    print(f"\n{name}: {n:,} images + QA + thumbnails loaded in {seconds:.1f} s (load {load:.1f})")
    if name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    results: dict[str, tuple] = {}
    with engine.connect() as conn:
        if show_plans:
            day = START.date() + dt.timedelta(days=3)
            for label, flt in (
                ("one day", ImageFilter(date=day)),
                ("cone", ImageFilter(cone=Cone(120.0, 54.6, 1.0))),
                ("cone across 0", ImageFilter(cone=Cone(359.8, 54.6, 1.0))),
                ("grade fail", ImageFilter(grades=("fail",), limit=100)),
                ("newest", ImageFilter(descending=True, limit=100)),
            ):
                print(f"  plan, {label}:\n{explain(conn, flt)}")
        for label, fn in query_forms(conn, n).items():
            results[label] = timed(fn, repeat)
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--plans", action="store_true", help="Print EXPLAIN of the main forms.")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {args.rows:,} rows")
    all_results: dict[str, dict[str, tuple]] = {}
    for backend in args.backends:
        ctx = sqlite_url() if backend == "sqlite" else postgres_url()
        with ctx as url:
            all_results[backend] = run_backend(backend, url, args.rows, args.repeat, args.plans)
    backends = list(all_results)
    header = "| query | " + " | ".join(f"{b} p50 ms | {b} p95 ms" for b in backends) + " | rows |"
    print("\n" + header)
    print("|---" * (2 + 2 * len(backends)) + "|")
    labels = list(next(iter(all_results.values())))
    for label in labels:
        cells = []
        for b in backends:
            p50, p95, _ = all_results[b][label]
            cells.append(f"{p50:.2f} | {p95:.2f}")
        rows = all_results[backends[0]][label][2]
        print(f"| {label} | " + " | ".join(cells) + f" | {rows:.0f} |")
    for b in backends:
        base = all_results[b]["BASELINE cone r=1 deg without prefilter"][0]
        with_pf = all_results[b]["cone r=1 deg (no date)"][0]
        print(f"{b}: cone with prefilter is {base / with_pf:.0f}x faster (p50) than without")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"generated at {utcnow():%Y-%m-%d %H:%M} UTC; load average (1/5/15 min) {load}")


if __name__ == "__main__":
    main()
