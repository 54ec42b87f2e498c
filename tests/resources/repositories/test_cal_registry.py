"""The cal_registry repository: which calibration tables apply at an MJD, on both backends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from resources.errors import InvalidQueryError
from resources.models.cal_registry import Caltable, caltable_type_from_path
from resources.repositories import cal_registry
from resources.repositories.cal_registry import active_caltables_at
from tests.resources.repositories.catalogue_data import migrated


def _caltable(
    set_name: str, suffix: str, start: float, end: float, created: dt.datetime, **kw: Any
) -> dict[str, Any]:
    kind, order = caltable_type_from_path(f"{set_name}{suffix}")
    return {
        "set_name": set_name,
        "path": f"/cal/{set_name}{suffix}",
        "table_type": kind,
        "apply_order": order,
        "valid_start_mjd": start,
        "valid_end_mjd": end,
        "created_at": created,
        "status": "active",
        **kw,
    }


def test_active_caltables_at(data_dir: Path) -> None:
    engine = migrated("cal_registry", f"sqlite:///{data_dir / 'cal_registry.sqlite3'}")
    t = Caltable.__table__
    old = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    new = dt.datetime(2025, 10, 2, tzinfo=dt.UTC)
    rows = [
        # written out of apply order on purpose
        _caltable("setA", "_gpcal", 60950.0, 60951.0, old),
        _caltable("setA", "_kcal", 60950.0, 60951.0, old),
        _caltable("setA", "_bpcal", 60950.0, 60951.0, old),
        _caltable("setB", "_gacal", 60950.5, 60951.5, new),
        _caltable("setB", "_kcal", 60950.5, 60951.5, new),
        _caltable("setC", "_kcal", 60950.0, 60960.0, new + dt.timedelta(days=1), status="retired"),
    ]
    with engine.begin() as conn:
        conn.execute(insert(t), rows)
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(insert(t).values(_caltable("bad", "_kcal", 2.0, 1.0, new)))
    with engine.connect() as conn:
        # covered by both A and B: B is newer; retired C ignored
        got = active_caltables_at(conn, 60950.75)
        assert [(r.set_name, r.table_type) for r in got] == [("setB", "K"), ("setB", "GA")]
        # only A covers it: B starts at 60950.5, padded by 12 h to 60950.0
        got = active_caltables_at(conn, 60949.9)
        assert [(r.set_name, r.table_type) for r in got] == [
            ("setA", "K"),
            ("setA", "BP"),
            ("setA", "GP"),
        ]
        # 11 h after A's end (and inside B): B; 13 h after B's end: nothing
        assert active_caltables_at(conn, 60951.5 + 11 / 24)[0].set_name == "setB"
        assert active_caltables_at(conn, 60951.5 + 13 / 24) == []
        assert active_caltables_at(conn, 60951.5 + 13 / 24, window_hours=14)[0].set_name == "setB"
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
        got = cal_registry.applylist(conn, 60950.5)
        assert [t.table_type for t in got] == ["K", "BP", "GA", "2G"]
        assert {t.set_name for t in got} == {"new"}
        assert [t.table_type for t in cal_registry.applylist(conn, 60951.4)] == [
            "K",
            "BP",
            "GA",
            "2G",
        ]
        assert cal_registry.applylist(conn, 60951.6) == []  # beyond the +-12 h pad
        assert cal_registry.applylist(conn, 60951.6, window_hours=24)
        assert cal_registry.status_counts(conn) == {"active": 7}
        with pytest.raises(InvalidQueryError):
            cal_registry.applylist(conn, float("nan"))
    engine.dispose()
