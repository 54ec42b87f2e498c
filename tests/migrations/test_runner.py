"""migrations.runner against real SQLite files and a real PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from migrations import runner
from resources.engines import build_engine
from resources.errors import MigrationError
from resources.models import METADATA
from resources.models.ingest import IngestQueueEntry
from resources.models.products import Image, ImageQA, Thumbnail
from resources.settings import DATABASE_NAMES, PoolSettings

URL = Callable[[str], str]
DATE_OBS = dt.datetime(2025, 10, 5, 12, 0, tzinfo=dt.UTC)  # MJD 60953.5


def image_row(path: str) -> dict[str, object]:
    return {
        "path": path,
        "size_bytes": 10,
        "mtime_ns": 20,
        "fingerprint": "f",
        "hdu_index": 0,
        "naxis": [4, 4],
        "bitpix": -32,
        "width": 4,
        "height": 4,
        "date_obs": DATE_OBS,
        "obs_date": DATE_OBS.date(),
        "warnings": [],
    }


def populate_products(url: str) -> dict[str, int]:
    """Rows in every products table that references images (inserted at products_0001)."""
    engine = build_engine(url, PoolSettings())
    images = Image.__table__
    try:
        with engine.begin() as conn:
            # only the baseline's columns: image_row() has no mjd_obs (added by products_0002)
            ids = [
                conn.execute(
                    insert(images).values(image_row(f"/img/{i}.fits")).returning(images.c.id)
                ).scalar_one()
                for i in range(3)
            ]
            for image_id in ids:
                conn.execute(
                    insert(ImageQA.__table__).values(
                        image_id=image_id, grade="good", reasons=[], thresholds={}
                    )
                )
                conn.execute(
                    insert(Thumbnail.__table__).values(
                        image_id=image_id, path=f"/t/{image_id}.png", width=4, height=4
                    )
                )
                # the baseline's sources and photometry (products_0004 replaced both)
                src = conn.execute(
                    text(
                        "INSERT INTO sources (image_id, ra_deg, dec_deg, peak_flux_jy, snr)"
                        " VALUES (:i, 1.0, 2.0, 0.25, 50.0) RETURNING id"
                    ),
                    {"i": image_id},
                ).scalar_one()
                conn.execute(
                    text(
                        "INSERT INTO photometry (image_id, source_id, ra_deg, dec_deg, flux_jy)"
                        " VALUES (:i, :s, 1.0, 2.0, 0.125)"
                    ),
                    {"i": image_id, "s": src},
                )
        return table_counts(url)
    finally:
        engine.dispose()


def table_counts(
    url: str,
    tables: tuple[str, ...] = ("images", "image_qa", "thumbnails", "sources", "photometry"),
) -> dict[str, int]:
    engine = build_engine(url, PoolSettings())
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}
    finally:
        engine.dispose()


def columns(url: str, table: str) -> set[str]:
    engine = build_engine(url, PoolSettings())
    try:
        return {c["name"] for c in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_empty_to_head_every_database_then_noop(backend: URL) -> None:
    for name in DATABASE_NAMES:
        url = backend(name)
        fresh = runner.status(name, url)
        assert fresh.current is None and not fresh.at_head
        assert fresh.pending == tuple(r.revision for r in runner.history(name))
        result = runner.upgrade(name, url, backup=False)
        assert result.before is None and result.after == runner.head_revision(name)
        assert result.applied == fresh.pending
        assert runner.check(name, url) == []
        first = runner.status(name, url)
        assert first.at_head and first.pending == ()
        again = runner.upgrade(name, url)
        assert again.applied == () and "nothing to do" in again.message
        assert again.backup_path is None  # nothing applied, nothing backed up
        assert runner.status(name, url) == first
    noops = REGISTRY.get_sample_value(
        "contimg_migration_runs_total",
        {"database": "products", "direction": "upgrade", "outcome": "noop"},
    )
    assert noops is not None and noops >= 1


@pytest.mark.postgres
def test_five_databases_share_one_postgres_database(pg_url: str) -> None:
    engine = build_engine(pg_url, PoolSettings())
    with engine.begin() as conn:  # Dagster's own storage keeps the default version table
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('dagster_rev')"))
    for name in DATABASE_NAMES:
        runner.upgrade(name, pg_url)
    for name in DATABASE_NAMES:
        assert runner.status(name, pg_url).at_head
        assert runner.check(name, pg_url) == []
    tables = set(inspect(engine).get_table_names())
    assert {f"alembic_version_{n}" for n in DATABASE_NAMES} <= tables
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
            ("dagster_rev",)
        ]
    runner.downgrade("hdf5", pg_url, "base")  # one database's round trip leaves the others
    assert "hdf5_files" not in inspect(engine).get_table_names()
    for name in DATABASE_NAMES:
        assert runner.status(name, pg_url).at_head == (name != "hdf5")
    engine.dispose()


def test_head_to_base_to_head(backend: URL) -> None:
    for name in DATABASE_NAMES:
        url = backend(name)
        runner.upgrade(name, url, backup=False)
        down = runner.downgrade(name, url, "base", backup=False)
        assert down.after is None and down.applied == tuple(
            reversed([r.revision for r in runner.history(name)])
        )
        engine = build_engine(url, PoolSettings())
        assert not set(METADATA[name].tables) & set(inspect(engine).get_table_names())
        engine.dispose()
        runner.upgrade(name, url, backup=False)
        assert runner.status(name, url).at_head and runner.check(name, url) == []


def test_products_previous_and_back_keeps_rows(backend: URL) -> None:
    url = backend("products")
    runner.upgrade("products", url, "products_0001", backup=False)
    before = populate_products(url)
    assert before == {"images": 3, "image_qa": 3, "thumbnails": 3, "sources": 3, "photometry": 3}
    up = runner.upgrade("products", url, "products_0002", backup=False)
    assert up.applied == ("products_0002",)
    engine = build_engine(url, PoolSettings())
    with engine.connect() as conn:  # the backfill computed MJD from date_obs
        mjds = conn.execute(select(Image.__table__.c.mjd_obs)).scalars().all()
    assert mjds == [pytest.approx(60953.5, abs=1e-6)] * 3
    down = runner.downgrade("products", url, "-1", backup=False)
    assert down.after == "products_0001" and down.applied == ("products_0002",)
    assert "mjd_obs" not in columns(url, "images")
    assert table_counts(url) == before  # children of the rebuilt images table survive
    runner.upgrade("products", url, "products_0003", backup=False)
    assert table_counts(url) == before
    with engine.connect() as conn:
        mjds = conn.execute(select(Image.__table__.c.mjd_obs)).scalars().all()
    assert mjds == [pytest.approx(60953.5, abs=1e-6)] * 3
    # products_0004: the old detections and fluxes become measurements, and come back
    runner.upgrade("products", url, "products_0004", backup=False)
    head = ("images", "measurements", "sources", "source_extractions")
    assert table_counts(url, head) == {
        "images": 3,
        "measurements": 6,
        "sources": 0,
        "source_extractions": 0,
    }
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT forced, flux_peak, mjd FROM measurements ORDER BY forced, id")
        ).all()
    assert [(bool(f), p) for f, p, _ in rows] == [(False, 250.0)] * 3 + [(True, 125.0)] * 3
    assert all(m == pytest.approx(60953.5, abs=1e-6) for _, _, m in rows)
    runner.downgrade("products", url, "products_0003", backup=False)
    assert table_counts(url) == before
    runner.upgrade("products", url, backup=False)
    engine.dispose()
    assert runner.check("products", url) == []


def test_ingest_previous_and_back_keeps_errors(backend: URL) -> None:
    url = backend("ingest")
    runner.upgrade("ingest", url, "ingest_0001", backup=False)
    engine = build_engine(url, PoolSettings())
    with engine.begin() as conn:  # rows written by the baseline's code: one error string
        for path, err in [
            ("/a", "NotFITSError: no SIMPLE card"),
            ("/b", "disk full: retry later"),
            ("/c", None),
        ]:
            conn.execute(
                text(
                    "INSERT INTO ingest_queue (path, size_bytes, mtime_ns, state, attempts,"
                    " last_error, discovered_at, updated_at)"
                    " VALUES (:p, 1, 1, 'failed', 1, :e, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"p": path, "e": err},
            )
    q = IngestQueueEntry.__table__

    def rows() -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    select(q.c.path, q.c.error_class, q.c.last_error).order_by(q.c.path)
                )
            ]

    runner.upgrade("ingest", url, backup=False)
    split = rows()
    assert split == [
        ("/a", "NotFITSError", "no SIMPLE card"),
        ("/b", None, "disk full: retry later"),
        ("/c", None, None),
    ]
    runner.downgrade("ingest", url, "ingest_0001", backup=False)
    with engine.connect() as conn:
        folded = conn.execute(text("SELECT last_error FROM ingest_queue ORDER BY path")).all()
    assert [r[0] for r in folded] == [
        "NotFITSError: no SIMPLE card",
        "disk full: retry later",
        None,
    ]
    runner.upgrade("ingest", url, backup=False)
    assert rows() == split
    engine.dispose()


def test_ingest_missing_state_round_trip(backend: URL) -> None:
    """ingest_0003: vanished files stored as failed/FileVanishedError become `missing`, and the
    CHECK accepts `missing` only from that revision on; a downgrade maps them back."""
    url = backend("ingest")
    runner.upgrade("ingest", url, "ingest_0002", backup=False)
    engine = build_engine(url, PoolSettings())
    insert_row = text(
        "INSERT INTO ingest_queue (path, size_bytes, mtime_ns, state, attempts, error_class,"
        " discovered_at, updated_at)"
        " VALUES (:p, 1, 1, :s, 1, :c, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    with engine.begin() as conn:
        for path, state, cls in [
            ("/gone", "failed", "FileVanishedError"),
            ("/bad", "failed", "NotFITSError"),
            ("/ok", "completed", None),
        ]:
            conn.execute(insert_row, {"p": path, "s": state, "c": cls})
    with pytest.raises(IntegrityError), engine.begin() as conn:  # not in the vocabulary yet
        conn.execute(insert_row, {"p": "/early", "s": "missing", "c": None})

    def states() -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            query = text("SELECT path, state, error_class FROM ingest_queue ORDER BY path")
            return [tuple(r) for r in conn.execute(query)]

    runner.upgrade("ingest", url, backup=False)
    assert states() == [
        ("/bad", "failed", "NotFITSError"),
        ("/gone", "missing", "FileVanishedError"),
        ("/ok", "completed", None),
    ]
    with engine.begin() as conn:
        conn.execute(insert_row, {"p": "/late", "s": "missing", "c": "FileVanishedError"})
    runner.downgrade("ingest", url, "ingest_0002", backup=False)
    assert [r[1] for r in states()] == ["failed", "failed", "failed", "completed"]
    runner.upgrade("ingest", url, backup=False)
    assert [r[1] for r in states()] == ["failed", "missing", "missing", "completed"]
    assert runner.check("ingest", url) == []
    engine.dispose()


def test_drift_in_memory_model_fails_check(backend: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    url = backend("products")
    runner.upgrade("products", url, backup=False)
    assert runner.check("products", url) == []
    drifted = MetaData(naming_convention=METADATA["products"].naming_convention)
    for table in METADATA["products"].sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["images"].append_column(Column("drift_probe", Integer, nullable=True))
    monkeypatch.setitem(METADATA, "products", drifted)
    lines = runner.check("products", url)
    assert lines == ["column images.drift_probe (INTEGER) is in the models but not in the database"]
    monkeypatch.undo()
    assert runner.check("products", url) == []


def test_dry_run_reports_sql_and_changes_nothing(backend: URL) -> None:
    url = backend("products")
    runner.upgrade("products", url, "products_0001", backup=False)
    dry = runner.upgrade("products", url, "products_0002", dry_run=True)
    assert dry.dry_run and dry.applied == ("products_0002",) and dry.after == "products_0001"
    assert dry.sql is not None and "mjd_obs" in dry.sql and "UPDATE images" in dry.sql
    assert runner.status("products", url).current == "products_0001"
    assert "mjd_obs" not in columns(url, "images")


FAILING = '''
"""Fails half-way through (test revision)."""
import sqlalchemy as sa
from alembic import op

revision = "products_9999"
down_revision = "products_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch_op:
        batch_op.add_column(sa.Column("half_done", sa.Integer(), nullable=True))
    op.execute("UPDATE images SET half_done = 1")
    raise RuntimeError("disk quota exceeded while backfilling")


def downgrade() -> None:
    pass
'''


def test_failing_migration_leaves_previous_revision(backend: URL, migrations_copy: Path) -> None:
    (migrations_copy / "products" / "versions" / "products_9999_fails.py").write_text(FAILING)
    url = backend("products")
    runner.upgrade("products", url, "products_0001", backup=False)
    before = populate_products(url)
    with pytest.raises(MigrationError) as info:
        runner.upgrade("products", url)  # applies 0002 to 0005, then 9999 fails: all rolled back
    err = info.value
    assert err.revision == "products_9999"
    assert "disk quota exceeded" in str(err) and "still at products_0001" in str(err)
    assert runner.status("products", url).current == "products_0001"
    assert {"mjd_obs", "half_done"}.isdisjoint(columns(url, "images"))
    assert table_counts(url) == before
    failures = REGISTRY.get_sample_value(
        "contimg_migration_runs_total",
        {"database": "products", "direction": "upgrade", "outcome": "failed"},
    )
    assert failures is not None and failures >= 1


def test_sqlite_backup_is_restorable_and_pruned(data_dir: Path) -> None:
    url = f"sqlite:///{data_dir / 'products.sqlite3'}"
    runner.upgrade("products", url, "products_0001", backup=False)
    populate_products(url)
    query = "SELECT id, path, size_bytes, date_obs, naxis FROM images ORDER BY id"
    with sqlite3.connect(data_dir / "products.sqlite3") as live:
        original = live.execute(query).fetchall()
    result = runner.upgrade("products", url, keep_backups=2)
    assert result.backup_path is not None
    backup = Path(result.backup_path)
    assert backup.parent == data_dir and backup.name.startswith("products.sqlite3.bak-")
    with sqlite3.connect(backup) as copy:
        assert copy.execute(query).fetchall() == original
        version = copy.execute("SELECT version_num FROM alembic_version_products").fetchall()
    assert version == [("products_0001",)]
    runner.restore_sqlite_backup(url, backup, name="products")
    assert runner.status("products", url).current == "products_0001"
    with sqlite3.connect(data_dir / "products.sqlite3") as live:
        assert live.execute(query).fetchall() == original
    for _ in range(2):
        runner.upgrade("products", url, keep_backups=2)
        runner.downgrade("products", url, "products_0001", keep_backups=2)
    kept = runner.sqlite_backups(url)
    assert len(kept) == 2 and backup not in kept


def test_targets_and_errors(backend: URL) -> None:
    url = backend("hdf5")
    with pytest.raises(MigrationError, match="unknown or ambiguous revision 'nope'"):
        runner.upgrade("hdf5", url, "nope")
    runner.upgrade("hdf5", url, backup=False)
    with pytest.raises(MigrationError, match="below the current revision; use downgrade"):
        runner.upgrade("hdf5", url, "base")
    with pytest.raises(MigrationError, match="beyond the history"):
        runner.downgrade("hdf5", url, "-3")
    nothing = runner.downgrade("hdf5", url, "hdf5_0002")
    assert nothing.applied == () and "nothing to do" in nothing.message


def test_history_and_new_revisions(
    data_dir: Path, migrations_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    products = runner.history("products")
    assert [(r.revision, r.down_revision, r.is_head) for r in products] == [
        ("products_0001", None, False),
        ("products_0002", "products_0001", False),
        ("products_0003", "products_0002", False),
        ("products_0004", "products_0003", False),
        ("products_0005", "products_0004", True),
    ]
    assert products[1].message.startswith("Add images.mjd_obs")
    url = f"sqlite:///{data_dir / 'hdf5.sqlite3'}"
    with pytest.raises(MigrationError, match="upgrade"):
        runner.new_revision("hdf5", "too early", autogenerate=True, url=url)
    runner.upgrade("hdf5", url, backup=False)
    with pytest.raises(MigrationError, match="agree"):
        runner.new_revision("hdf5", "nothing", autogenerate=True, url=url)
    assert [r.revision for r in runner.history("hdf5")] == ["hdf5_0001", "hdf5_0002"]
    drifted = MetaData(naming_convention=METADATA["hdf5"].naming_convention)
    METADATA["hdf5"].tables["hdf5_files"].to_metadata(drifted)
    drifted.tables["hdf5_files"].append_column(Column("checksum", Integer, nullable=True))
    with monkeypatch.context() as patch:
        patch.setitem(METADATA, "hdf5", drifted)
        info = runner.new_revision("hdf5", "add checksum", autogenerate=True, url=url)
    assert info.revision == "hdf5_0003" and info.down_revision == "hdf5_0002"
    script = Path(info.path).read_text()
    assert "add_column" in script and "checksum" in script
    assert Path(info.path).parent == migrations_copy / "hdf5" / "versions"
    blank = runner.new_revision("hdf5", "hand written")
    assert blank.revision == "hdf5_0004" and runner.head_revision("hdf5") == "hdf5_0004"


def test_plain_alembic_with_shipped_ini(data_dir: Path) -> None:
    ini = Path(runner.__file__).resolve().parent.parent / "alembic.ini"
    db = data_dir / "elsewhere" / "ingest.sqlite3"
    db.parent.mkdir(parents=True)  # only the data directory itself is created for the user
    env = {**os.environ, "CONTIMG_DB_INGEST_URL": f"sqlite:///{db}"}
    proc = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-n", "ingest", "upgrade", "head"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Running upgrade ingest_0001 -> ingest_0002" in proc.stderr
    assert "Running upgrade ingest_0002 -> ingest_0003" in proc.stderr
    assert runner.status("ingest", f"sqlite:///{db}").at_head
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "alembic_version_ingest" in tables and "alembic_version" not in tables


def _upgrade_in_child(url: str, barrier: Any, out: Any) -> None:
    barrier.wait(timeout=60)
    try:
        result = runner.upgrade("ingest", url, backup=False)
        out.put(("ok", list(result.applied), result.message))
    except MigrationError as exc:
        out.put(("error", [], str(exc)))


def test_concurrent_upgrades_apply_once(backend: URL) -> None:
    """Two processes upgrade one database at the same moment: one applies, one waits."""
    url = backend("ingest")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_upgrade_in_child, args=(url, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert sorted(len(r[1]) for r in results) == [0, 3], results
    assert runner.status("ingest", url).at_head and runner.check("ingest", url) == []


def test_threads_in_one_process_are_serialised(backend: URL) -> None:
    url = backend("hdf5")
    barrier = threading.Barrier(2)
    results: list[runner.MigrationResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(runner.upgrade("hdf5", url, backup=False))
        except BaseException as exc:  # noqa: BLE001 - recorded and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    every = len(runner.history("hdf5"))
    assert sorted(len(r.applied) for r in results) == [0, every], [r.message for r in results]
