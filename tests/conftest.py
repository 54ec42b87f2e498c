"""Fixtures shared by every test: an isolated data dir, real databases, real services."""

from __future__ import annotations

import os
import tempfile

# Before anything imports pipeline_defs (which picks the prometheus_client multiprocess
# directory on import): keep the test session's metric files out of the working tree.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="contimg-prom-"))

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from resources import engines
from resources.database import Databases
from resources.settings import DATABASE_NAMES
from tests.fixtures_pipeline import migrated_sqlite
from tests.resources.hdf5.files import Observation, observation_maker, write_templates
from tests.services import pg_admin_url, require_service, temporary_pg_database


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data dir and DAGSTER_HOME, and no inherited database URLs."""
    data = tmp_path / "var"
    data.mkdir()
    monkeypatch.setenv("CONTIMG_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    (data / "dagster_home").mkdir()
    for name in DATABASE_NAMES:
        monkeypatch.delenv(f"CONTIMG_DB_{name.upper()}_URL", raising=False)
    monkeypatch.delenv("CONTIMG_INCOMING_DIRS", raising=False)
    monkeypatch.delenv("CONTIMG_HDF5_DIRS", raising=False)
    monkeypatch.delenv("CONTIMG_MS_DIRS", raising=False)
    monkeypatch.delenv("CONTIMG_CALTABLE_DIRS", raising=False)
    monkeypatch.delenv("CONTIMG_THUMBNAIL_DIR", raising=False)
    return data


@pytest.fixture
def data_dir(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def pg_database() -> Iterator[str]:
    """Name of a fresh PostgreSQL database, dropped after the test."""
    with temporary_pg_database() as name:
        yield name


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """SQLAlchemy URL (psycopg 3 driver named explicitly) of a fresh PostgreSQL database."""
    return pg_admin_url(database=pg_database)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_for(request: pytest.FixtureRequest, data_dir: Path) -> Callable[[str], str]:
    """name -> URL, once per backend: a SQLite file per logical database, or ONE fresh PostgreSQL
    database shared by all five (each keeps its own version table)."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{data_dir / f'{name}.sqlite3'}"
    pg_url: str = request.getfixturevalue("pg_url")
    return lambda _name: pg_url


@pytest.fixture
def redis_available() -> None:
    require_service("Redis", "127.0.0.1", 6379)


@pytest.fixture
def dbs(data_dir: Path) -> Iterator[Databases]:
    """The five SQLite databases at head under the data dir (what the env default points to);
    a test module that wants other backends defines its own `dbs`."""
    yield migrated_sqlite(data_dir)
    engines.dispose_all()


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """One real observation of 16 UVH5 subband files, written by pyuvdata once per session."""
    return write_templates(tmp_path_factory.mktemp("uvh5_templates"))


@pytest.fixture
def raw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The correlator's directory, as CONTIMG_HDF5_DIRS."""
    directory = tmp_path / "correlator"
    directory.mkdir()
    monkeypatch.setenv("CONTIMG_HDF5_DIRS", str(directory))
    return directory


@pytest.fixture
def observation(templates: dict[int, Path], raw: Path) -> Observation:
    """make(start, subbands=, ...) -> an observation's files in `raw` (clones of `templates`)."""
    return observation_maker(templates, raw)
