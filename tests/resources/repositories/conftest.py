"""A loaded catalogue per backend (SQLite file, or a fresh PostgreSQL database), built once per
test module: the tests only read it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.resources.repositories.catalogue_data import load, migrated
from tests.services import pg_admin_url, temporary_pg_database


@dataclass
class Catalogue:
    engine: Engine
    ids: dict[str, int]
    url: str


def _build(url: str, tmp: Path) -> Catalogue:
    engine = migrated("products", url)
    return Catalogue(engine, load(engine, tmp), url)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def catalogue(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Catalogue]:
    tmp = tmp_path_factory.mktemp("catalogue")
    if request.param == "sqlite":
        cat = _build(f"sqlite:///{tmp / 'products.sqlite3'}", tmp)
        yield cat
        cat.engine.dispose()
        return
    with temporary_pg_database() as name:
        cat = _build(pg_admin_url(database=name), tmp)
        yield cat
        cat.engine.dispose()
