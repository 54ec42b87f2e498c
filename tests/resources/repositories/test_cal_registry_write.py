"""The cal_registry write path on both backends: register (overlap refused, supersede, idempotent),
retire, list, overlapping sets, the applied-to lineage, the newest active set."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection, Engine

from resources.calibration.tables import CaltableInfo
from resources.errors import CalibrationConflictError, InvalidQueryError
from resources.models.cal_registry import CalibrationApplied, Caltable, caltable_type_from_path
from resources.repositories import cal_registry as repo
from tests.resources.metrics_support import wait_for
from tests.resources.repositories.catalogue_data import backend_engine

T = Caltable.__table__


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Engine]:
    yield from backend_engine(request, data_dir, "cal_registry")


def info(name: str, start: float, end: float) -> CaltableInfo:
    kind, order = caltable_type_from_path(name)
    return CaltableInfo(
        path=f"/cal/{name}",
        table_type=kind,
        apply_order=order,
        start_mjd=start,
        end_mjd=end,
        n_rows=12,
        cal_field="3C286",
        refant="pad103",
        size_bytes=2000,
        mtime_ns=1,
    )


def sample(set_name: str, start: float, end: float) -> list[CaltableInfo]:
    return [info(f"{set_name}{s}", start, end) for s in ("_kcal", "_bpcal", "_gpcal")]


def rows(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(select(T.c.path, T.c.set_name, T.c.status).order_by(T.c.path))
        ]


def test_register_then_overlap_refused_and_nothing_written(engine: Engine) -> None:
    first = repo.register_caltables(engine, sample("day1", 61041.0, 61041.5), set_name="day1")
    assert len(first.registered) == 3 and first.unchanged == [] and first.retired == []
    before = rows(engine)
    # One table of the new set overlaps (GP), the others would not: the whole set is refused.
    new = [
        info("day2_kcal", 61041.5, 61042.0),  # touches day1's end: allowed
        info("day2_gpcal", 61041.4, 61042.0),
    ]
    with pytest.raises(CalibrationConflictError) as caught:
        repo.register_caltables(engine, new, set_name="day2")
    message = str(caught.value)
    assert "\n" not in message
    for part in ("/cal/day2_gpcal", "GP", "day1", "61041.40000", "61041.50000", "--supersede"):
        assert part in message
    assert rows(engine) == before and len(before) == 3


def test_touching_windows_and_same_set_are_allowed(engine: Engine) -> None:
    repo.register_caltables(engine, sample("day1", 61041.0, 61041.5), set_name="day1")
    repo.register_caltables(engine, sample("day2", 61041.5, 61042.0), set_name="day2")
    # A second GP table of the same set overlapping its sibling is no conflict.
    repo.register_caltables(engine, [info("day2b_gpcal", 61041.6, 61041.9)], set_name="day2")
    assert [s for _p, s, st in rows(engine) if st == "active"].count("day2") == 4
    assert repo.overlapping_active_sets(engine) == []


def test_supersede_retires_the_overlapping_tables_of_that_type(engine: Engine) -> None:
    repo.register_caltables(engine, sample("day1", 61041.0, 61041.5), set_name="day1")
    result = repo.register_caltables(
        engine,
        [info("day2_gpcal", 61041.4, 61042.0), info("day2_kcal", 61041.5, 61042.0)],
        set_name="day2",
        supersede=True,
    )
    assert result.retired == ["/cal/day1_gpcal"]
    status = {p: st for p, _s, st in rows(engine)}
    assert status["/cal/day1_gpcal"] == "retired"
    assert status["/cal/day1_kcal"] == "active" and status["/cal/day1_bpcal"] == "active"
    (retired,) = repo.list_caltables(engine, status="retired")
    assert retired.notes is not None and "superseded by set day2" in retired.notes
    assert repo.overlapping_active_sets(engine) == []


def test_register_again_is_idempotent_and_a_new_window_needs_supersede(engine: Engine) -> None:
    tables = sample("day1", 61041.0, 61041.5)
    repo.register_caltables(engine, tables, set_name="day1")
    again = repo.register_caltables(engine, tables, set_name="day1")
    assert again.registered == [] and len(again.unchanged) == 3
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(T)).scalar_one() == 3
    moved = [dataclasses.replace(tables[0], end_mjd=61041.8)]
    with pytest.raises(CalibrationConflictError, match="already registered.*--supersede"):
        repo.register_caltables(engine, moved, set_name="day1")
    done = repo.register_caltables(engine, moved, set_name="day1", supersede=True)
    assert done.registered == [tables[0].path]
    (row,) = repo.list_caltables(engine, table_type="K")
    assert row.valid_end_mjd == 61041.8 and row.status == "active"


def test_reversed_window_is_invalid(engine: Engine) -> None:
    with pytest.raises(InvalidQueryError, match="before it starts"):
        repo.register_caltables(engine, [info("x_gpcal", 2.0, 1.0)], set_name="x")
    assert rows(engine) == []


def test_retire_and_list(engine: Engine) -> None:
    repo.register_caltables(engine, sample("day1", 61041.0, 61041.5), set_name="day1")
    repo.register_caltables(engine, sample("day2", 61042.0, 61042.5), set_name="day2")
    assert repo.retire(engine, paths=["/cal/day1_kcal"]) == 1
    assert repo.retire(engine, paths=["/cal/day1_kcal"]) == 0  # already retired
    assert repo.retire(engine, set_name="day2") == 3
    active = repo.list_caltables(engine, status="active")
    assert [r.path for r in active] == ["/cal/day1_bpcal", "/cal/day1_gpcal"]
    assert [r.set_name for r in repo.list_caltables(engine)][:3] == ["day2"] * 3  # newest first
    assert len(repo.list_caltables(engine, set_name="day2", table_type="BP")) == 1
    with pytest.raises(InvalidQueryError):
        repo.list_caltables(engine, status="gone")
    with pytest.raises(InvalidQueryError):
        repo.retire(engine)
    # a retired set's window is free again
    repo.register_caltables(engine, sample("day2new", 61042.0, 61042.5), set_name="day2new")


def test_overlapping_active_sets_finds_rows_written_around_the_rules(engine: Engine) -> None:
    repo.register_caltables(engine, sample("day1", 61041.0, 61041.5), set_name="day1")
    with engine.begin() as conn:
        conn.execute(
            insert(T),
            [
                {
                    "set_name": "manual",
                    "path": "/cal/manual_bpcal",
                    "table_type": "BP",
                    "apply_order": 30,
                    "valid_start_mjd": 61041.2,
                    "valid_end_mjd": 61041.3,
                },
                {  # touching: no overlap
                    "set_name": "manual",
                    "path": "/cal/manual_gpcal",
                    "table_type": "GP",
                    "apply_order": 50,
                    "valid_start_mjd": 61041.5,
                    "valid_end_mjd": 61041.9,
                },
            ],
        )
    (overlap,) = repo.overlapping_active_sets(engine)
    assert (overlap.table_type, overlap.first_set, overlap.second_set) == ("BP", "day1", "manual")
    assert overlap.first_window == (61041.0, 61041.5)
    assert overlap.second_path == "/cal/manual_bpcal"
    assert "day1" in overlap.describe() and "manual" in overlap.describe()
    repo.retire(engine, set_name="manual")
    assert repo.overlapping_active_sets(engine) == []


def test_record_applied_replaces_and_refuses_retired_or_unknown(engine: Engine) -> None:
    repo.register_caltables(engine, sample("day1", 61041.0, 61041.5), set_name="day1")
    repo.register_caltables(engine, sample("day2", 61042.0, 61042.5), set_name="day2")
    ids = {r.path: r.id for r in repo.list_caltables(engine)}
    day1 = [ids[f"/cal/day1{s}"] for s in ("_gpcal", "_kcal", "_bpcal")]
    records = repo.record_applied(engine, "/ms/a.ms", day1)
    assert [r.table_type for r in records] == ["K", "BP", "GP"]  # apply order
    assert {r.set_name for r in records} == {"day1"} and all(r.status == "active" for r in records)
    # replaced, not added to
    repo.record_applied(engine, "/ms/a.ms", [ids["/cal/day2_gpcal"]])
    assert [r.path for r in repo.applied_to(engine, ["/ms/a.ms"])["/ms/a.ms"]] == [
        "/cal/day2_gpcal"
    ]
    repo.retire(engine, set_name="day1")

    def count() -> int:
        with engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(CalibrationApplied.__table__)
            ).scalar_one()

    with pytest.raises(CalibrationConflictError, match="day1_kcal is retired"):
        repo.record_applied(engine, "/ms/a.ms", [ids["/cal/day1_kcal"], ids["/cal/day2_kcal"]])
    with pytest.raises(CalibrationConflictError, match="no calibration table with id 9999"):
        repo.record_applied(engine, "/ms/a.ms", [9999])
    assert count() == 1  # the old record survived both refusals
    # a table retired after it was applied shows as retired in the lineage
    repo.record_applied(engine, "/ms/b.ms", [ids["/cal/day2_kcal"]])
    repo.retire(engine, paths=["/cal/day2_kcal"])
    lineage = repo.applied_to(engine, ["/ms/a.ms", "/ms/b.ms", "/ms/none.ms"])
    assert [r.status for r in lineage["/ms/b.ms"]] == ["retired"]
    assert lineage["/ms/none.ms"] == []
    assert repo.record_applied(engine, "/ms/b.ms", []) == [] and count() == 1


def test_newest_active_created_at(engine: Engine) -> None:
    assert repo.newest_active_created_at(engine) is None
    before = dt.datetime.now(dt.UTC)
    repo.register_caltables(engine, sample("day1", 61041.0, 61041.5), set_name="day1")
    newest = repo.newest_active_created_at(engine)
    assert newest is not None and newest.tzinfo is not None
    assert before - dt.timedelta(seconds=5) <= newest <= dt.datetime.now(dt.UTC)
    repo.retire(engine, set_name="day1")
    assert repo.newest_active_created_at(engine) is None


def test_a_second_writer_waits_and_then_sees_the_first(engine: Engine) -> None:
    """Two registrations at once cannot both pass the overlap check: the second one waits for
    the first's transaction, then is refused by what it committed."""
    outcome: list[BaseException | repo.RegisterResult] = []

    def second() -> None:
        try:
            outcome.append(
                repo.register_caltables(engine, sample("day2", 61041.2, 61041.8), set_name="day2")
            )
        except CalibrationConflictError as exc:
            outcome.append(exc)

    with engine.connect() as first:
        with first.begin():
            repo.register_caltables(first, sample("day1", 61041.0, 61041.5), set_name="day1")
            thread = threading.Thread(target=second)
            thread.start()
            if engine.dialect.name == "postgresql":
                wait_for("the second writer to wait for the lock", lambda: _lock_waiters(first))
            else:  # SQLite: it waits under the busy timeout while this transaction is open
                thread.join(timeout=0.5)
                assert thread.is_alive(), outcome
        thread.join(timeout=30)
    assert not thread.is_alive()
    (result,) = outcome
    assert isinstance(result, CalibrationConflictError), result
    assert {s for _p, s, _st in rows(engine)} == {"day1"}


def _lock_waiters(conn: Connection) -> int | None:
    waiting = conn.execute(
        text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    ).scalar_one()
    return int(waiting) or None
