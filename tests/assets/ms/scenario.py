"""One observation day upstream of its images, on real files: what the MS asset and CLI tests use.

Two measurement sets written by pyuvdata (12:00, converted from a subband group that lacks sb07;
12:05, with no subband group registered), a truncated third one, calibration set `S1` (K, BP, GP
tables written by casacore, valid over the day) recorded as applied to the 12:00 MS, and two
image rows named after the 12:00 MS. Built once per module (`build`), copied per test.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert

from assets.ms.summary import day_mjd_range
from resources.calibration import synthetic as cal_synthetic
from resources.calibration.tables import read_caltable
from resources.database import Databases
from resources.hdf5.scan import scan_directories
from resources.ms import synthetic
from resources.repositories import cal_registry
from resources.repositories import products as repo
from tests.resources.hdf5.files import START, observation_maker, write_templates

DAY = START.date()
SECOND = START + dt.timedelta(minutes=5)
STAMP = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class Files:
    """The day's files on disk, written once (`write_files`), copied per test (`place`)."""

    ms: Path
    hdf5: Path
    caltables: Path


def write_files(root: Path) -> Files:
    files = Files(root / "ms", root / "hdf5", root / "caltables")
    templates = write_templates(root / "templates")
    observation_maker(templates, files.hdf5)(START, subbands=[sb for sb in range(16) if sb != 7])
    synthetic.write_ms(files.ms, START)
    synthetic.write_ms(files.ms, SECOND, subbands=range(4))
    synthetic.write_broken_ms(files.ms, START + dt.timedelta(minutes=10), "truncated")
    lo, hi = day_mjd_range(DAY)
    cal_synthetic.write_sample_set(files.caltables, "S1", lo, hi)
    return files


def place(files: Files, target: Path) -> Files:
    """A private copy of the files under `target` (tests change them)."""
    out = Files(target / "ms", target / "hdf5", target / "caltables")
    for source, dest in zip(
        (files.ms, files.hdf5, files.caltables), (out.ms, out.hdf5, out.caltables), strict=True
    ):
        shutil.copytree(source, dest, symlinks=True)
    return out


def first_ms(files: Files) -> Path:
    return (files.ms / f"{START.strftime(STAMP)}.ms").resolve()


def add_image(dbs: Databases, name: str, day: dt.date = DAY) -> int:
    """An `images` row (only what the links need) for an image file called `name`."""
    row = {
        "path": f"/images/{name}", "size_bytes": 10, "mtime_ns": 20, "fingerprint": "f",
        "hdu_index": 0, "naxis": [4, 4], "bitpix": -32, "width": 4, "height": 4,
        "date_obs": dt.datetime.combine(day, START.time(), dt.UTC), "obs_date": day,
        "warnings": [],
    }  # fmt: skip
    with dbs.begin("products") as conn:
        return conn.execute(
            insert(repo.IMAGES).values(row).returning(repo.IMAGES.c.id)
        ).scalar_one()


def register_upstream(dbs: Databases, files: Files) -> list[cal_registry.AppliedRecord]:
    """The subband group registered, set S1 registered and applied to the 12:00 MS, and two
    images named after that MS catalogued."""
    scan_directories(dbs.engine("hdf5"), [files.hdf5], workers=1)
    infos = [read_caltable(p) for p in sorted(files.caltables.iterdir())]
    result = cal_registry.register_caltables(dbs.engine("cal_registry"), infos, set_name="S1")
    assert len(result.registered) == 3
    ids = [r.id for r in cal_registry.list_caltables(dbs.engine("cal_registry"), set_name="S1")]
    applied = cal_registry.record_applied(dbs.engine("cal_registry"), str(first_ms(files)), ids)
    stem = START.strftime(STAMP)
    add_image(dbs, f"{stem}_dec+16.3.fits")
    add_image(dbs, f"{stem}_dec+16.3.pb.fits")
    return applied
