"""`Databases(require_schema=True)`: a database not at head is refused at its first use, with the
database named and `contimg db upgrade` as the fix; a missing SQLite file is not created."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from migrations import runner
from resources import engines
from resources.database import Databases, forget_schema_checks
from resources.errors import DatabaseNotMigratedError, MigrationError
from tests.fixtures_pipeline import sqlite_urls


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_schema_checks()
    yield
    forget_schema_checks()
    engines.dispose_all()


def test_missing_file_is_refused_without_creating_it(tmp_path: Path) -> None:
    where = tmp_path / "nowhere"
    dbs = Databases(sqlite_urls(where), require_schema=True)
    with pytest.raises(DatabaseNotMigratedError) as caught:
        dbs.connect("ingest")
    message = str(caught.value)
    assert message.startswith("database 'ingest': not migrated: the SQLite file ")
    assert str(where / "ingest.sqlite3") in message and "Run `contimg db upgrade`" in message
    assert caught.value.missing_file and caught.value.database == "ingest"
    assert not where.exists()  # neither the file nor its directory


def test_empty_and_behind_head_databases_are_named(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    sqlite3.connect(data_dir / "products.sqlite3").close()
    runner.upgrade("ingest", urls["ingest"], "ingest_0001", backup=False)
    dbs = Databases(urls, require_schema=True)
    with pytest.raises(DatabaseNotMigratedError, match=r"has no schema yet \(head is products_"):
        dbs.engine("products")
    with pytest.raises(DatabaseNotMigratedError) as caught, dbs.begin("ingest"):
        pass
    assert str(caught.value).startswith(
        "database 'ingest' at revision ingest_0001: not migrated: sqlite:///"
    )
    assert "is behind head ingest_0003. Run `contimg db upgrade`" in str(caught.value)
    assert isinstance(caught.value, MigrationError)
    # Health probes and migrations work on any schema: the check is opt-in and per call.
    assert Databases(urls).engine("products") is not None
    assert dbs.engine("products", check_schema=False) is not None
    assert dbs.health("ingest").ok


def test_at_head_is_checked_once_per_process(data_dir: Path) -> None:
    urls = sqlite_urls(data_dir)
    runner.upgrade("products", urls["products"], backup=False)
    dbs = Databases(urls, require_schema=True)
    with dbs.connect("products") as conn:
        assert conn.execute(text("SELECT count(*) FROM images")).scalar_one() == 0
    # Downgraded behind its back: the cached verdict stands (no read per connection) ...
    runner.downgrade("products", urls["products"], "base", backup=False)
    dbs.connect("products").close()
    # ... until the process forgets it; only a success is remembered.
    forget_schema_checks()
    for _ in range(2):
        with pytest.raises(DatabaseNotMigratedError):
            dbs.connect("products")
    runner.upgrade("products", urls["products"], backup=False)
    dbs.connect("products").close()


def test_async_engine_is_checked_too(data_dir: Path) -> None:
    dbs = Databases(sqlite_urls(data_dir), require_schema=True)

    async def use() -> None:
        async with dbs.async_engine("hdf5"):
            pass

    with pytest.raises(DatabaseNotMigratedError, match="database 'hdf5'"):
        asyncio.run(use())
    assert not (data_dir / "hdf5.sqlite3").exists()


def test_health_without_creating_missing_files(tmp_path: Path) -> None:
    where = tmp_path / "fresh"
    dbs = Databases(sqlite_urls(where))
    result = dbs.health("products", create_missing=False)
    assert not result.ok and result.error_class == "DatabaseNotMigratedError"
    assert "does not exist" in (result.error_message or "")
    assert result.pool.pool_class == "unavailable"
    assert not where.exists()
    where.mkdir()  # outside the data directory, a missing directory is never created
    assert dbs.health_all(create_missing=True)["products"].ok  # the default creates, as before
    assert (where / "products.sqlite3").exists()
