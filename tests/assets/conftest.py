"""Fixtures of the asset tests: the FITS service and migrated SQLite databases in `tmp_path`."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.fits_service import FitsMetadataService


@pytest.fixture
def service(tmp_path: Path) -> FitsMetadataService:
    """A FITS service with its cache in the test's directory (two parser threads)."""
    return FitsMetadataService(cache_path=tmp_path / "fits-cache.sqlite3", max_workers=2)
