"""Ingest, calibration, registry and statistics repositories on both backends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import insert

from assets.publishing import product_id
from resources import data_registry, ingest_queue
from resources.errors import InvalidQueryError
from resources.models.cal_registry import Caltable
from resources.repositories import calibration, ingest, registry, stats
from resources.repositories.images import upsert_daily_stats
from tests.resources.repositories.catalogue_data import migrated


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_for(request: pytest.FixtureRequest, data_dir: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{data_dir / f'{name}.sqlite3'}"
    pg_url: str = request.getfixturevalue("pg_url")
    return lambda _name: pg_url


def test_queue_summary_stuck_failed_and_retry(url_for) -> None:  # type: ignore[no-untyped-def]
    engine = migrated("ingest", url_for("ingest"))
    day = dt.date(2025, 10, 5)
    ingest_queue.register_files(
        engine, [ingest_queue.FileRecord(f"/in/{i}.fits", 10, i, day) for i in range(6)]
    )
    claimed = ingest_queue.claim(engine, limit=4, worker="w1")
    ingest_queue.mark_failed(engine, claimed[0].path, "NotFITSError", "no SIMPLE card\nmore")
    ingest_queue.mark_completed(engine, claimed[1].path)
    with engine.connect() as conn:
        s = ingest.summary(conn, stuck_after=dt.timedelta(hours=1))
        assert s.counts == {"pending": 2, "in_progress": 2, "completed": 1, "failed": 1}
        assert s.stuck == []  # claimed just now: not stuck under a 1 h limit
        assert s.oldest_pending is not None and s.oldest_pending.path == "/in/4.fits"
        assert [r.path for r in s.failed] == [claimed[0].path]
        stuck = ingest.stuck_rows(conn, dt.timedelta(0))
        assert sorted(r.path for r in stuck) == sorted(r.path for r in claimed[2:])
        with pytest.raises(InvalidQueryError):
            ingest.stuck_rows(conn, dt.timedelta(minutes=-1))
    # what the listing calls stuck is exactly what requeue_stale takes back
    assert ingest_queue.requeue_stale(engine, dt.timedelta(0)) == len(stuck)
    assert ingest.retry_failed(engine) == 1
    row = ingest.history(engine, claimed[0].path)
    assert row is not None and row.state == "pending" and row.attempts == 1
    assert ingest.history(engine, "/nope") is None
    engine.dispose()


def test_applylist_orders_the_newest_covering_set(url_for) -> None:  # type: ignore[no-untyped-def]
    engine = migrated("cal_registry", url_for("cal_registry"))
    t0 = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    rows = []
    for set_name, created, suffixes in (
        ("old", t0, ["_gpcal", "_kcal", "_bpcal"]),
        ("new", t0 + dt.timedelta(days=1), ["_2gcal", "_bpcal", "_kcal", "_gacal"]),
    ):
        for suffix in suffixes:
            kind, order = {
                "_kcal": ("K", 10),
                "_bpcal": ("BP", 30),
                "_gacal": ("GA", 40),
                "_gpcal": ("GP", 50),
                "_2gcal": ("2G", 60),
            }[suffix]
            rows.append(
                {
                    "set_name": set_name,
                    "path": f"/cal/{set_name}{suffix}",
                    "table_type": kind,
                    "apply_order": order,
                    "created_at": created,
                    "valid_start_mjd": 60950.0,
                    "valid_end_mjd": 60951.0,
                    "status": "active",
                }
            )
    with engine.begin() as conn:
        conn.execute(insert(Caltable.__table__), rows)
    with engine.connect() as conn:
        got = calibration.applylist(conn, 60950.5)
        assert [t.table_type for t in got] == ["K", "BP", "GA", "2G"]
        assert {t.set_name for t in got} == {"new"}
        assert [t.table_type for t in calibration.applylist(conn, 60951.4)] == [
            "K",
            "BP",
            "GA",
            "2G",
        ]
        assert calibration.applylist(conn, 60951.6) == []  # beyond the +-12 h pad
        assert calibration.applylist(conn, 60951.6, window_hours=24)
        assert calibration.status_counts(conn) == {"active": 7}
        with pytest.raises(InvalidQueryError):
            calibration.applylist(conn, float("nan"))
    engine.dispose()


def test_registry_products_of_image(url_for) -> None:  # type: ignore[no-untyped-def]
    engine = migrated("data_registry", url_for("data_registry"))
    image = "/data/2025-10-05/a.fits"
    pid = registry.image_product_id("thumbnail", image)
    assert pid.startswith("thumbnail:") and pid != registry.image_product_id("thumbnail", "/b.fits")
    assert pid == registry.image_product_id("thumbnail", "/data/2025-10-05/../2025-10-05/a.fits")
    for kind in ("thumbnail", "image"):
        data_registry.register_product(
            engine,
            product_type=kind,
            product_id=product_id(kind, image),
            stage_path=f"/stage/{kind}",
            qa_status="passed",
        )
    data_registry.publish_if_passed(engine, product_id("image", image), "/pub/a.fits")
    with engine.connect() as conn:
        got = registry.products_of_image(conn, image)
        assert [(p.product_type, p.status) for p in got] == [
            ("image", "published"),
            ("thumbnail", "staging"),
        ]
        assert registry.products_of_image(conn, "/other.fits") == []
        assert registry.status_counts(conn) == {
            ("image", "published"): 1,
            ("thumbnail", "staging"): 1,
        }
    engine.dispose()


def test_daily_stats_range(url_for) -> None:  # type: ignore[no-untyped-def]
    engine = migrated("products", url_for("products"))
    days = [dt.date(2025, 10, 1) + dt.timedelta(days=k) for k in range(5)]
    with engine.begin() as conn:
        for k, day in enumerate(days):
            upsert_daily_stats(
                conn,
                {
                    "obs_date": day,
                    "n_images": 10 + k,
                    "n_good": 5,
                    "n_warn": 2,
                    "n_fail": 1,
                    "n_failed_parses": k,
                    "rms_median_jy": 1e-3,
                    "rms_p95_jy": 2e-3,
                    "dr_median": 300.0,
                    "images_per_dec_strip": {"+54.6": 10 + k},
                },
            )
    with engine.connect() as conn:
        assert [r.obs_date for r in stats.daily_stats(conn)] == days
        got = stats.daily_stats(conn, days[1], days[3])
        assert [r.obs_date for r in got] == days[1:4]
        assert got[0].n_ungraded == 3 and got[0].images_per_dec_strip == {"+54.6": 11}
        assert [r.obs_date for r in stats.daily_stats(conn, date_from=days[3])] == days[3:]
        assert [r.obs_date for r in stats.daily_stats(conn, date_to=days[0])] == days[:1]
        assert stats.daily_stats(conn, dt.date(2026, 1, 1)) == []
        with pytest.raises(InvalidQueryError):
            stats.daily_stats(conn, days[3], days[1])
    engine.dispose()
