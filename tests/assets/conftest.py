"""Fixtures of the asset tests: the FITS service and migrated SQLite databases in `tmp_path`."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.database import Databases
from resources.fits_service import FitsMetadataService
from tests.fixtures_pipeline import migrated_sqlite


@pytest.fixture
def service(tmp_path: Path) -> FitsMetadataService:
    """A FITS service with its cache in the test's directory (two parser threads)."""
    return FitsMetadataService(cache_path=tmp_path / "fits-cache.sqlite3", max_workers=2)


@pytest.fixture
def dbs(data_dir: Path) -> Databases:
    """The five databases, SQLite files under the test's data directory, migrated to head."""
    return migrated_sqlite(data_dir)
