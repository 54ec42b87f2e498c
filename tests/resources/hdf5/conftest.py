"""Fixtures of real UVH5 files (tests/resources/hdf5/files.py says how they are made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.resources.hdf5.files import Observation, observation_maker, write_templates


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    return write_templates(tmp_path_factory.mktemp("uvh5_templates"))


@pytest.fixture
def observation(templates: dict[int, Path], tmp_path: Path) -> Observation:
    return observation_maker(templates, tmp_path / "raw")
