"""`contimg_caltable_newest_active_age_hours`: read from a real migrated cal_registry at scrape
time; absent while no table is active, the database is down or not migrated."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, update

from migrations import runner
from pipeline_defs.monitoring.exporter import DatabaseCollector, ExporterSettings, build_exporter
from resources.calibration.tables import CaltableInfo
from resources.models.cal_registry import Caltable
from resources.repositories import cal_registry as repo
from resources.settings import database_url
from tests.resources.metrics_support import value

GAUGE = "contimg_caltable_newest_active_age_hours"
REGISTERED = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _settings(tmp_path: Path) -> ExporterSettings:
    directory = tmp_path / "prometheus"
    directory.mkdir(exist_ok=True)
    return ExporterSettings(
        multiprocess_dir=directory,
        db_timeout=5.0,
        include_dagster=False,
        databases=("cal_registry",),
    )


def _register(set_name: str, start: float, created: dt.datetime) -> None:
    engine = create_engine(database_url("cal_registry"))
    info = CaltableInfo(
        path=f"/cal/{set_name}_gpcal",
        table_type="GP",
        apply_order=50,
        start_mjd=start,
        end_mjd=start + 0.5,
        n_rows=4,
        cal_field=None,
        refant=None,
        size_bytes=1,
        mtime_ns=1,
    )
    repo.register_caltables(engine, [info], set_name=set_name)
    with engine.begin() as conn:
        conn.execute(
            update(Caltable.__table__)
            .where(Caltable.__table__.c.set_name == set_name)
            .values(created_at=created)
        )
    engine.dispose()


def _age(tmp_path: Path, now: dt.datetime) -> float | None:
    collector = DatabaseCollector(_settings(tmp_path), clock=now.timestamp)
    (family,) = [f for f in collector.collect() if f.name == GAUGE]
    return family.samples[0].value if family.samples else None


def test_age_of_the_newest_active_set(tmp_path: Path, data_dir: Path) -> None:
    runner.upgrade("cal_registry")
    assert _age(tmp_path, REGISTERED) is None  # migrated, nothing active
    _register("older", 61000.0, REGISTERED - dt.timedelta(days=3))
    _register("newer", 61001.0, REGISTERED)
    assert _age(tmp_path, REGISTERED + dt.timedelta(hours=30)) == 30.0
    engine = create_engine(database_url("cal_registry"))
    repo.retire(engine, set_name="newer")
    engine.dispose()
    assert _age(tmp_path, REGISTERED + dt.timedelta(hours=30)) == 30.0 + 72.0
    # the whole exposition, with the real clock
    text = build_exporter(_settings(tmp_path)).render().decode()
    now = dt.datetime.now(dt.UTC)
    expected = (now - (REGISTERED - dt.timedelta(days=3))).total_seconds() / 3600.0
    observed = value(text, GAUGE)
    assert observed is not None and abs(observed - expected) < 0.1
    assert f"# HELP {GAUGE} " in text


def test_absent_when_down_or_not_migrated(tmp_path: Path, data_dir: Path) -> None:
    text = build_exporter(_settings(tmp_path)).render().decode()
    assert value(text, "contimg_db_up", database="cal_registry") == 0.0
    assert value(text, GAUGE) is None
    sqlite3.connect(data_dir / "cal_registry.sqlite3").close()  # exists, never migrated
    text = build_exporter(_settings(tmp_path)).render().decode()
    assert value(text, "contimg_db_up", database="cal_registry") == 1.0
    assert value(text, GAUGE) is None
