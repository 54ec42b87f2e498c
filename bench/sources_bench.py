"""The sources domain along the user's path, against a straightforward implementation.

    .venv/bin/python bench/sources_bench.py [--images 24] [--size 1024] [--sources 50] [--repeat 3]
                                            [--history 1,30,90] [--history-sources 1000]
                                            [--per-day 4] [--json FILE]

1. Extraction + association per image. `--images` images of one field (1024², ~`--sources`
   point sources each, SNR 10-200, the pointing moving a few pixels between images) through
   the product's own code on a fresh SQLite catalogue: `ingest_day`, `products_day(qa=True,
   sources=True)` (the day's single read of each plane, extraction on the pixel threads) and
   `associate_day`; then the same day with `sources=False`. The increment is what the sources
   cost along the user's path. The straightforward implementation, in the same run: per image,
   `astropy.io.fits.getdata`, `sep.Background` + `sep.extract` (no fit), `WCS.all_pix2world`,
   `SkyCoord.match_to_catalog_sky` against the catalogue so far (new sources appended), and
   after each image a pandas groupby over all measurements for the per-source means.
2. The variability update of day D (`--history`): a synthetic catalogue of `--history-sources`
   sources each measured `--per-day` times a day, inserted directly; `variability_day` brings
   the statistics up to date after day D − 1 (untimed: the daily runs before), then days D,
   D + 1 and D + 2 arrive one by one and the median of their `variability_day` is the cost of
   day D (every source is touched: a drift scan sees the same strip daily), against a pandas groupby of the whole history computing η
   and V. The issue's target: day 365 ≤ 1.5 × day 1.

Wall-clock on a shared machine: the load average and core count are printed; compare ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from assets.catalogue.ingest import ingest_day
from assets.products.day import products_day
from assets.qa.statistics import QAThresholds
from assets.sources.association import AssociationConfig, source_name
from assets.sources.day import VariabilityConfig, associate_day, variability_day
from migrations import runner
from resources.database import Databases
from resources.fits.synthetic import ImageSpec, write_image
from resources.fits_service import FitsMetadataService
from resources.repositories import products as repo
from resources.settings import DATABASE_NAMES, default_database_url

DAY = dt.date(2026, 3, 1)
RA0, DEC0 = 150.0, 16.3


def migrated_sqlite(base: Path) -> Databases:
    """The five databases as SQLite files under `base`, at head."""
    urls = {name: default_database_url(name, base) for name in DATABASE_NAMES}
    for name, url in urls.items():
        runner.upgrade(name, url, backup=False)
    return Databases(urls)


def migrated_single(url: str) -> Databases:
    """The five logical databases in one PostgreSQL database, at head."""
    for name in DATABASE_NAMES:
        runner.upgrade(name, url, backup=False)
    return Databases(dict.fromkeys(DATABASE_NAMES, url))


@contextlib.contextmanager
def fresh_postgres(admin_url: str, name: str) -> Iterator[str]:
    """A new database next to `admin_url`'s, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load() -> float:
    return os.getloadavg()[0]


def _sky(n: int, size: int, cell_deg: float, seed: int = 7) -> list[tuple[float, float, float]]:
    """n point sources over the inner 80 % of the field, ≥ 8 px apart, peaks 5-100 mJy."""
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float, float]] = []
    half = 0.4 * size * cell_deg
    while len(out) < n:
        dx, dy = rng.uniform(-half, half, size=2)
        if any(math.hypot(dx - a, dy - b) < 8 * cell_deg for a, b, _ in out):
            continue
        out.append(
            (float(dx), float(dy), float(math.exp(rng.uniform(math.log(5e-3), math.log(0.1)))))
        )
    return [(RA0 + dx / math.cos(math.radians(DEC0)), DEC0 + dy, f) for dx, dy, f in out]


def write_field(folder: Path, n_images: int, size: int, n_sources: int) -> None:
    cell_deg = 4.0 / 3600.0
    sky = tuple(_sky(n_sources, size, cell_deg))
    for k in range(n_images):
        when = dt.datetime.combine(DAY, dt.time(2, 0), tzinfo=dt.UTC) + k * dt.timedelta(minutes=5)
        spec = ImageSpec(
            date_obs=when, dec_deg=DEC0, ra_deg=RA0 + 0.002 * (k - n_images / 2), size=size,
            n_sources=0, noise_jy=5e-4, seed=100 + k, sky_sources=sky,
        )  # fmt: skip
        write_image(folder / f"{when:%Y-%m-%dT%H:%M:%S}_dec+16.3.fits", spec)


def ours(folder: Path, work: Path, sources: bool) -> dict[str, float]:
    os.environ["CONTIMG_INCOMING_DIRS"] = str(folder)
    os.environ["CONTIMG_DATA_DIR"] = str(work)
    dbs = migrated_sqlite(work)
    service = FitsMetadataService(cache_path=work / "cache.sqlite3", max_workers=2)
    ingest_day(dbs, service, DAY, run_id="bench")
    started = time.perf_counter()
    done = products_day(dbs, DAY, qa=True, thumbnails=False, thresholds=QAThresholds(),
                        sources=sources)  # fmt: skip
    passed = time.perf_counter() - started
    assoc_s = 0.0
    n_meas = 0
    if sources:
        t0 = time.perf_counter()
        report = associate_day(dbs, DAY, AssociationConfig())
        assoc_s = time.perf_counter() - t0
        n_meas = report.measurements
    return {"pass_s": passed, "association_s": assoc_s, "measurements": n_meas,
            "images": float(done.sources.images if done.sources else 0)}  # fmt: skip


def straightforward(folder: Path) -> dict[str, float]:
    from astropy.io import fits
    from baseline import Sources  # bench/baseline.py, beside this script

    started = time.perf_counter()
    sources = Sources()
    for path in sorted(folder.glob("*.fits")):
        data, header = fits.getdata(path, header=True)
        sources.add(data, header)
    return {
        "seconds": time.perf_counter() - started,
        "measurements": float(len(sources.measurements)),
    }


# --- 2. variability against a history ---------------------------------------------------------


def make_sources(dbs: Databases, n_sources: int) -> tuple[list[int], np.ndarray]:
    rng = np.random.default_rng(3)
    ra = RA0 + rng.uniform(-1, 1, n_sources)
    dec = DEC0 + rng.uniform(-1, 1, n_sources)
    with dbs.begin("products") as conn:
        ids = repo.insert_sources(
            conn,
            [
                {"name": source_name(a, d), "wavg_ra": a, "wavg_dec": d, "first_obs_date": DAY,
                 "state": {}}
                for a, d in zip(ra, dec, strict=True)
            ],
        )  # fmt: skip
    return ids, rng.uniform(5, 50, n_sources)


def insert_days(
    dbs: Databases, ids: list[int], flux: np.ndarray, first: int, last: int, per_day: int
) -> None:
    """Images and blind measurements of days [first, last) (direct inserts)."""
    from sqlalchemy import insert

    rng = np.random.default_rng(first)
    with dbs.begin("products") as conn:
        for day_k in range(first, last):
            day = DAY + dt.timedelta(days=day_k)
            for j in range(per_day):
                when = dt.datetime.combine(day, dt.time(2, 5 * j), tzinfo=dt.UTC)
                image_id = conn.execute(
                    insert(repo.IMAGES).values(
                        path=f"/bench/{day}_{j}.fits",
                        size_bytes=1,
                        mtime_ns=1,
                        fingerprint="x",
                        hdu_index=0,
                        naxis=[2],
                        bitpix=-32,
                        width=1,
                        height=1,
                        date_obs=when,
                        obs_date=day,
                        mjd_obs=61000.0 + day_k + j / 288,
                        warnings=[],
                    )
                ).inserted_primary_key[0]
                f = flux * (1 + 0.02 * rng.standard_normal(flux.size))
                conn.execute(
                    insert(repo.MEASUREMENTS),
                    [
                        {"image_id": image_id, "source_id": sid, "forced": False,
                         "obs_date": day, "mjd": 61000.0 + day_k + j / 288, "ra": RA0,
                         "dec": DEC0, "flux_peak": float(v), "flux_peak_err": 0.5,
                         "flux_int": float(v), "flux_int_err": 0.5, "snr": float(v) / 0.5}
                        for sid, v in zip(ids, f, strict=True)
                    ],
                )  # fmt: skip


REPEAT_DAYS = 3


def history_case(
    work: Path, days: int, n_sources: int, per_day: int, postgres: str | None = None
) -> dict[str, Any]:
    """The update of day `days` after `days - 1` days whose statistics are up to date (the
    daily run of each), against pandas over the whole history."""
    work.mkdir(parents=True)
    if postgres:
        with fresh_postgres(postgres, f"contimg_bench_{os.getpid()}_{days}") as url:
            dbs = migrated_single(url)
            try:
                return _history(dbs, days, n_sources, per_day, analyze=True) | {
                    "backend": "postgresql"
                }
            finally:
                for name in DATABASE_NAMES:
                    dbs.engine(name, check_schema=False).dispose()
    return _history(migrated_sqlite(work), days, n_sources, per_day) | {"backend": "sqlite"}


def _history(
    dbs: Databases, days: int, n_sources: int, per_day: int, analyze: bool = False
) -> dict[str, Any]:
    """`analyze`: PostgreSQL's planner statistics refreshed after each load, as autovacuum does
    in a running database (without them, a table loaded a moment ago is seq-scanned)."""
    import pandas as pd
    from sqlalchemy import select, text

    def loaded() -> None:
        if analyze:
            with dbs.begin("products") as conn:
                conn.execute(text("ANALYZE measurements"))
                conn.execute(text("ANALYZE sources"))

    ids, flux = make_sources(dbs, n_sources)
    if days > 1:
        insert_days(dbs, ids, flux, 0, days - 1, per_day)
        loaded()
        variability_day(dbs, DAY + dt.timedelta(days=days - 2), ids, [], VariabilityConfig())
    times = []
    for k in range(REPEAT_DAYS):  # days D, D + 1, D + 2: the median of their updates
        insert_days(dbs, ids, flux, days - 1 + k, days + k, per_day)
        loaded()
        t0 = time.perf_counter()
        day = DAY + dt.timedelta(days=days - 1 + k)
        report = variability_day(dbs, day, ids, [], VariabilityConfig())
        times.append(time.perf_counter() - t0)
    ours_s = statistics.median(times)
    # The update's own memory: one more day, traced (tracemalloc slows allocation, so this day
    # is not timed). numpy's buffers are traced; the database driver's own are not.
    insert_days(dbs, ids, flux, days - 1 + REPEAT_DAYS, days + REPEAT_DAYS, per_day)
    loaded()
    tracemalloc.start()
    variability_day(
        dbs, DAY + dt.timedelta(days=days - 1 + REPEAT_DAYS), ids, [], VariabilityConfig()
    )
    update_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rss_before_pandas_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    with dbs.connect("products") as conn:
        cols = (repo.MEASUREMENTS.c.source_id, repo.MEASUREMENTS.c.flux_int,
                repo.MEASUREMENTS.c.flux_int_err)  # fmt: skip
        frame = pd.read_sql(select(*cols), conn)
    frame["w"] = 1.0 / frame["flux_int_err"] ** 2
    frame["wf"] = frame["w"] * frame["flux_int"]
    frame["wf2"] = frame["wf"] * frame["flux_int"]
    g = frame.groupby("source_id")
    n = g.size()
    eta = n / (n - 1) * (g["wf2"].mean() - g["wf"].mean() ** 2 / g["w"].mean())
    v = g["flux_int"].std() / g["flux_int"].mean()
    baseline_s = time.perf_counter() - t0
    assert len(eta) == len(v) == n_sources
    return {"days": days, "history": len(frame), "measurements_read": report.measurements_read,
            "ours_s": round(ours_s, 3), "ours_each_s": [round(t, 3) for t in times], "pandas_s": round(baseline_s, 3),
            "ratio": round(ours_s / baseline_s, 3),
            "update_peak_traced_mb": round(update_peak_mb, 1),
            "peak_rss_before_pandas_mb": round(rss_before_pandas_mb)}  # fmt: skip


def per_image_case(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    folder = root / "incoming"
    folder.mkdir()
    write_field(folder, args.images, args.size, args.sources)
    # Each configuration --repeat times, alternating, on fresh catalogues; the fastest of each
    # (wall time on a shared 2-core machine varies by +-15 % between runs minutes apart).
    runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": [], "plain": []}
    for k in range(args.repeat):
        runs["with"].append(ours(folder, root / f"with{k}", sources=True))
        runs["without"].append(ours(folder, root / f"without{k}", sources=False))
        runs["plain"].append(straightforward(folder))
    with_sources = min(runs["with"], key=lambda r: r["pass_s"] + r["association_s"])
    without = min(runs["without"], key=lambda r: r["pass_s"])
    plain = min(runs["plain"], key=lambda r: r["seconds"])
    n = args.images
    per_image_ms = 1000 * ((with_sources["pass_s"] - without["pass_s"]) +
                           with_sources["association_s"]) / n  # fmt: skip
    return {
        "images": n, "size": args.size,
        "measurements_ours": with_sources["measurements"],
        "measurements_straightforward": plain["measurements"],
        "pass_with_sources_s": round(with_sources["pass_s"], 3),
        "pass_without_sources_s": round(without["pass_s"], 3),
        "association_s": round(with_sources["association_s"], 3),
        "sources_ms_per_image": round(per_image_ms, 1),
        "straightforward_ms_per_image": round(1000 * plain["seconds"] / n, 1),
        "ratio": round(per_image_ms / (1000 * plain["seconds"] / n), 3),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts")
    parser.add_argument("--history", default="1,30,90")
    parser.add_argument("--history-sources", type=int, default=1000)
    parser.add_argument("--per-day", type=int, default=4)
    parser.add_argument("--postgres", metavar="ADMIN_URL",
                        help="run the history cases on PostgreSQL: a database is created next to "
                        "this one (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres) "
                        "and dropped")  # fmt: skip
    parser.add_argument("--skip-images", action="store_true", help="only the history cases")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out: dict[str, Any] = {"cores": os.cpu_count(), "load_before": load()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.skip_images:
            out["per_image"] = per_image_case(root, args)
            print(json.dumps(out["per_image"], indent=1))
        out["history"] = []
        for days in (int(d) for d in args.history.split(",")):
            case = history_case(root / f"h{days}", days, args.history_sources, args.per_day,
                                args.postgres)  # fmt: skip
            print(json.dumps(case))
            out["history"].append(case)
    out["load_after"] = load()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(
        f"cores {out['cores']}, load {out['load_before']:.2f} → {out['load_after']:.2f}, "
        f"peak RSS of this process {out['peak_rss_mb']} MB"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
