"""Real databases and real sample FITS files for the ingest, products and Dagster tests.

Plain functions (not fixtures), so every test module declares the few fixtures it needs on top
of them without importing fixture objects across modules. Sample data is written once per
parameter set and copied (mtimes preserved) into each test's incoming directory: the files are
deterministic, so a copy is indistinguishable from a fresh write, and much cheaper.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from migrations import runner
from resources.database import Databases
from resources.fits.synthetic import BROKEN_KINDS, SampleFile, generate_sample_data
from resources.repositories import ingest as ingest_queue
from resources.repositories.products import IMAGES
from resources.settings import DATABASE_NAMES, default_database_url

SAMPLE_START = dt.date(2025, 10, 1)
SAMPLE_DAYS = 3
SAMPLE_PER_DAY = 4
SAMPLE_SIZE = 64
BROKEN_BY_NAME = {kind.name: kind for kind in BROKEN_KINDS}

_TEMPLATES: dict[tuple[int, int, int, bool], tuple[Path, list[SampleFile]]] = {}


def sqlite_urls(base: Path) -> dict[str, str]:
    return {name: default_database_url(name, base) for name in DATABASE_NAMES}


def migrate_all(urls: dict[str, str]) -> None:
    """Every logical database at head, with the runner `contimg db upgrade` uses."""
    for name, url in urls.items():
        runner.upgrade(name, url, backup=False)


def migrated_sqlite(data_dir: Path) -> Databases:
    """The five SQLite databases under `data_dir`, at head (what the env default points to)."""
    urls = sqlite_urls(data_dir)
    migrate_all(urls)
    return Databases(urls)


def migrated_single_url(url: str) -> Databases:
    """All five logical databases in one database (PostgreSQL): own version tables each."""
    urls = dict.fromkeys(DATABASE_NAMES, url)
    migrate_all(urls)
    return Databases(urls)


def write_samples(
    incoming: Path,
    *,
    days: int = SAMPLE_DAYS,
    per_day: int = SAMPLE_PER_DAY,
    size: int = SAMPLE_SIZE,
    broken: bool = True,
) -> list[SampleFile]:
    """The sample set of `generate_sample_data` (small images) in `incoming`."""
    key = (days, per_day, size, broken)
    if key not in _TEMPLATES:
        root = Path(tempfile.mkdtemp(prefix="contimg-samples-"))
        files = generate_sample_data(
            root, days=days, start=SAMPLE_START, per_day=per_day, size=size, broken=broken
        )
        _TEMPLATES[key] = (root, files)
    root, files = _TEMPLATES[key]
    incoming.mkdir(parents=True, exist_ok=True)
    out = []
    for sample in files:
        dest = incoming / sample.path.name
        shutil.copy2(sample.path, dest)  # keeps the mtime (set to the observation time)
        out.append(replace(sample, path=dest))
    return out


@dataclass(frozen=True)
class Expected:
    """What a correct ingest of a sample set leaves behind, derived from the generator's spec."""

    files: list[SampleFile]

    def catalogued(self, day: dt.date | None = None) -> set[str]:
        """Paths that must have an `images` row: good files and broken kinds that parse."""
        return {
            str(f.path.resolve())
            for f in self.files
            if f.ingest_error is None and (day is None or f.obs_date == day)
        }

    def failed(self, day: dt.date | None = None) -> dict[str, str]:
        """path -> expected error class, for files dated `day` (None: every failing file)."""
        return {
            str(f.path.resolve()): f.ingest_error
            for f in self.files
            if f.ingest_error is not None and (day is None or f.obs_date == day)
        }

    def days(self) -> list[dt.date]:
        return sorted({f.obs_date for f in self.files if f.obs_date is not None})

    def by_kind(self, kind: str) -> SampleFile:
        return next(f for f in self.files if f.kind == kind)


def image_paths(dbs: Databases, day: dt.date | None = None) -> list[str]:
    """Every `images` path (with repeats, so that a duplicate would show)."""
    stmt = select(IMAGES.c.path)
    if day is not None:
        stmt = stmt.where(IMAGES.c.obs_date == day)
    with dbs.connect("products") as conn:
        return list(conn.execute(stmt).scalars())


def count_rows(dbs: Databases, name: str, table: str) -> int:
    from sqlalchemy import table as sa_table

    with dbs.connect(name) as conn:
        return int(conn.execute(select(func.count()).select_from(sa_table(table))).scalar_one())


def queue_rows(bind: Databases | Engine) -> dict[str, ingest_queue.QueueRow]:
    """Every ingest-queue row by path."""
    engine = bind.engine("ingest") if isinstance(bind, Databases) else bind
    with engine.connect() as conn:
        rows = conn.execute(select(ingest_queue.QUEUE)).mappings().all()
    return {r["path"]: ingest_queue.QueueRow.from_mapping(r) for r in rows}


def failed_classes(dbs: Databases, paths: Iterable[str] | None = None) -> dict[str, str | None]:
    """path -> error_class of every `failed` queue row (restricted to `paths` when given)."""
    wanted = set(paths) if paths is not None else None
    return {
        path: row.error_class
        for path, row in queue_rows(dbs).items()
        if row.state == "failed" and (wanted is None or path in wanted)
    }
