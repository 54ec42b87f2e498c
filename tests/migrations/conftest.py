"""Fixtures for the migration tests: real SQLite files or one real PostgreSQL database."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from migrations import runner


@pytest.fixture
def backend(url_for: Callable[[str], str]) -> Callable[[str], str]:
    """name -> URL on both backends (the shared `url_for` fixture of tests/conftest.py)."""
    return url_for


@pytest.fixture
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the migrations tree the runner uses, for revisions made in tests."""
    copy = tmp_path / "migrations"
    shutil.copytree(
        runner.MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    monkeypatch.setattr(runner, "MIGRATIONS_DIR", copy)
    return copy
