"""A small, hand-shaped catalogue on a real migrated database, shared by the repository and CLI
tests: date boundaries (from real FITS headers), RA around 0/360, positions near the poles,
every grade and ungraded, two telescopes, paths with LIKE/GLOB metacharacters."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from migrations import runner
from resources.engines import build_engine
from resources.fits.metadata import ImageMetadata
from resources.fits.parser import parse_fits
from resources.fits.synthetic import ImageSpec, write_image
from resources.repositories.products import upsert_images, upsert_qa, upsert_thumbnails
from resources.settings import PoolSettings

UTC = dt.UTC


def migrated(name: str, url: str) -> Engine:
    runner.upgrade(name, url, backup=False)
    return build_engine(url, PoolSettings())


def backend_engine(request: pytest.FixtureRequest, data_dir: Path, name: str) -> Iterator[Engine]:
    """Database `name` migrated to head on the backend of `request.param` ("sqlite": a file in
    `data_dir`; "postgres": the test's own PostgreSQL database), disposed afterwards."""
    url = (
        f"sqlite:///{data_dir / f'{name}.sqlite3'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    engine = migrated(name, url)
    yield engine
    engine.dispose()


def meta(
    path: str,
    when: dt.datetime | None,
    ra: float | None,
    dec: float | None,
    *,
    telescope: str | None = "DSA-110",
) -> ImageMetadata:
    return ImageMetadata(
        path=path,
        size_bytes=1000,
        mtime_ns=1,
        fingerprint="f" * 32,
        hdu_index=0,
        naxis=(64, 64, 1, 1),
        bitpix=-32,
        width=64,
        height=64,
        ra_deg=ra,
        dec_deg=dec,
        cellsize_arcsec=4.0,
        freq_hz=1.4e9,
        bandwidth_hz=1.875e8,
        stokes="I",
        beam_major_arcsec=20.0,
        beam_minor_arcsec=12.0,
        beam_pa_deg=15.0,
        date_obs=when,
        mjd_obs=None if when is None else when.timestamp() / 86400.0 + 40587.0,
        obs_date=None if when is None else when.date(),
        telescope=telescope,
        object=None,
        bunit="JY/BEAM",
    )


def boundary_images(tmp: Path) -> list[ImageMetadata]:
    """Two real FITS files observed at 23:59:59 on 5 Oct and 00:00:00 on 6 Oct (UTC), parsed."""
    out = []
    for name, when in (
        ("late.fits", dt.datetime(2025, 10, 5, 23, 59, 59, tzinfo=UTC)),
        ("midnight.fits", dt.datetime(2025, 10, 6, 0, 0, 0, tzinfo=UTC)),
    ):
        path = write_image(tmp / "boundary" / name, ImageSpec(date_obs=when, dec_deg=54.6, size=32))
        parsed = parse_fits(path, compute_fingerprint=False)
        out.append(replace(parsed, ra_deg=100.0))
    return out


def catalogue(tmp: Path) -> list[ImageMetadata]:
    day = dt.datetime(2025, 10, 5, 12, 0, tzinfo=UTC)
    fixed = [
        meta("/data/2025-10-05/wrap_a.fits", day, 359.9, 54.6),
        meta("/data/2025-10-05/wrap_b.fits", day + dt.timedelta(minutes=5), 0.1, 54.6),
        meta("/data/2025-10-05/far.fits", day + dt.timedelta(minutes=10), 180.0, 54.6),
        meta("/data/2025-10-04/pole_a.fits", day - dt.timedelta(days=1), 0.0, 89.5),
        meta("/data/2025-10-04/pole_b.fits", day - dt.timedelta(days=1, minutes=-5), 180.0, 89.5),
        meta("/data/2025-10-07/south.fits", day + dt.timedelta(days=2), 45.0, -89.8),
        meta("/data/odd/100%_sure.fits", day + dt.timedelta(days=3), 10.0, 16.3),
        meta("/data/odd/a_b.fits", day + dt.timedelta(days=3, minutes=5), 20.0, 16.3),
        meta("/data/odd/axb.fits", day + dt.timedelta(days=3, minutes=10), 30.0, 16.3),
        meta("/data/odd/[x].fits", day + dt.timedelta(days=3, minutes=15), 40.0, 16.3),
        meta("/data/odd/UPPER.FITS", day + dt.timedelta(days=3, minutes=20), 50.0, 16.3),
        meta("/data/other/vla.fits", day + dt.timedelta(days=1), 200.0, 65.7, telescope="VLA"),
        meta("/data/other/nopos.fits", day + dt.timedelta(days=1, minutes=5), None, None),
    ]
    rng = random.Random(42)
    start = dt.datetime(2025, 10, 1, tzinfo=UTC)
    spread = [
        meta(
            f"/data/rand/r{i:03d}.fits",
            start + dt.timedelta(minutes=37 * i),
            rng.uniform(0, 360) if i % 7 else rng.choice([359.99, 0.01, 0.0]),
            rng.uniform(-90, 90) if i % 5 else rng.uniform(80, 90),
        )
        for i in range(150)
    ]
    return boundary_images(tmp) + fixed + spread


GRADE_CYCLE = ("good", "warn", "fail", None)


def load(engine: Engine, tmp: Path) -> dict[str, int]:
    """Load the catalogue, QA rows (cycling good/warn/fail/none) and thumbnails; ids by path."""
    metas = catalogue(tmp)
    with engine.begin() as conn:
        ids = upsert_images(conn, metas)
        qa: list[dict[str, Any]] = []
        thumbs: list[dict[str, Any]] = []
        for k, m in enumerate(metas):
            grade = GRADE_CYCLE[k % len(GRADE_CYCLE)]
            if grade is not None:
                qa.append(
                    {
                        "image_id": ids[m.path],
                        "grade": grade,
                        "rms_jy": 1e-3 * (1 + k % 13),
                        "peak_jy": 0.5,
                        "dynamic_range": 500.0 / (1 + k % 13),
                        "nan_fraction": 0.0,
                        "n_pixels": 4096,
                        "beam_ok": True,
                        "reasons": [] if grade == "good" else [f"{grade} because of test {k}"],
                        "thresholds": {"dr_fail": 10},
                    }
                )
            if k % 2 == 0:
                thumbs.append(
                    {
                        "image_id": ids[m.path],
                        "path": f"/thumbs/{ids[m.path]}.png",
                        "width": 64,
                        "height": 64,
                    }
                )
        upsert_qa(conn, qa)
        upsert_thumbnails(conn, thumbs)
    return ids
