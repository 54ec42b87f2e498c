"""The sky sources' writes and reads in batches, on both backends: new ids come back in the
order given, positions are updated without losing the rest of a source's state, and the
RA window of a band query holds exactly its sources, across RA 0/360."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from resources.repositories.products import (
    SOURCES,
    insert_sources,
    position_columns,
    sources_in_dec_band,
    update_source_positions,
)
from tests.resources.repositories.catalogue_data import backend_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Engine]:
    yield from backend_engine(request, data_dir, "products")


def _pos(ra: float, dec: float) -> dict[str, float]:
    return {"ra0": ra, "w_ew": 1e6, "s_ew": 0.0, "w_ns": 1e6, "s_ns": 1e6 * dec}


def _row(name: str, ra: float, dec: float) -> dict:
    pos = _pos(ra, dec)
    return {"name": name, "state": {"pos": pos}, "first_obs_date": dt.date(2025, 10, 1)} | (
        position_columns(pos)
    )


def test_batched_inserts_keep_order_and_updates_keep_the_state(engine: Engine) -> None:
    ras = [359.5, 0.2, 10.0, 180.0, 359.9, 0.0]
    with engine.begin() as conn:
        first = insert_sources(conn, [_row("a", 50.0, 30.0), _row("b", 50.0, 30.0)])
        conn.execute(SOURCES.delete().where(SOURCES.c.id == first[0]))  # a gap in the ids
        ids = insert_sources(conn, [_row(f"s{k}", ra, 16.0) for k, ra in enumerate(ras)])
        assert insert_sources(conn, []) == []
    assert len(ids) == len(ras) == len(set(ids)) and ids == sorted(ids) and ids[0] > first[1]
    with engine.connect() as conn:
        names = dict(conn.execute(select(SOURCES.c.id, SOURCES.c.name)).all())
    assert [names[i] for i in ids] == [f"s{k}" for k in range(len(ras))]

    with engine.begin() as conn:
        conn.execute(
            SOURCES.update()
            .where(SOURCES.c.id == ids[2])
            .values(state={"pos": {}, "var": {"n": 3}})
        )
        update_source_positions(conn, [{"id": ids[2], "pos": _pos(11.0, 16.5)}])
    with engine.connect() as conn:
        row = conn.execute(select(SOURCES).where(SOURCES.c.id == ids[2])).mappings().one()
    assert row["state"]["var"] == {"n": 3} and row["state"]["pos"]["ra0"] == 11.0
    assert row["wavg_ra"] == pytest.approx(11.0) and row["wavg_dec"] == pytest.approx(16.5)

    with engine.connect() as conn:
        band = {sid for sid, _ in sources_in_dec_band(conn, 15.0, 17.0)}
        across = sources_in_dec_band(conn, 15.0, 17.0, ra_ranges=((359.0, 360.0), (0.0, 0.5)))
        narrow = sources_in_dec_band(conn, 15.0, 17.0, ra_ranges=((170.0, 190.0),))
    assert band == set(ids)
    assert [sid for sid, _ in across] == [ids[0], ids[1], ids[4], ids[5]]
    assert [sid for sid, _ in narrow] == [ids[3]] and narrow[0][1]["ra0"] == 180.0
