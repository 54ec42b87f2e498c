"""Fixtures for the migration tests: real SQLite files or one real PostgreSQL database."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from migrations import runner


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, data_dir: Path) -> Callable[[str], str]:
    """name -> URL: one SQLite file per database, or ONE PostgreSQL database shared by all."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{data_dir / f'{name}.sqlite3'}"
    pg_url: str = request.getfixturevalue("pg_url")
    return lambda _name: pg_url


@pytest.fixture
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the migrations tree the runner uses, for revisions made in tests."""
    copy = tmp_path / "migrations"
    shutil.copytree(
        runner.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    monkeypatch.setattr(runner, "MIGRATIONS_DIR", copy)
    return copy
