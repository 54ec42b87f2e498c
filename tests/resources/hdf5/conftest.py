"""Fixtures of real UVH5 files (tests/resources/hdf5/files.py says how they are made): the
session's `templates` are tests/conftest.py's; here an observation is written under tmp_path/raw
without touching CONTIMG_HDF5_DIRS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resources.hdf5.files import Observation, observation_maker


@pytest.fixture
def observation(templates: dict[int, Path], tmp_path: Path) -> Observation:
    return observation_maker(templates, tmp_path / "raw")
