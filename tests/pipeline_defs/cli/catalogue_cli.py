"""Helpers of the catalogue command tests (test_images, test_queue, test_cal, test_stats)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline_defs.cli import main
from resources.settings import DATABASE_NAMES
from tests.resources.repositories.catalogue_data import load, migrated


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(name="env", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalogue_env(
    request: pytest.FixtureRequest, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):  # type: ignore[no-untyped-def]
    """Every database migrated on one backend, the catalogue loaded; returns (engines, ids)."""
    if request.param == "postgres":
        url = str(request.getfixturevalue("pg_url"))
        for name in DATABASE_NAMES:
            monkeypatch.setenv(f"CONTIMG_DB_{name.upper()}_URL", url)
        urls = dict.fromkeys(DATABASE_NAMES, url)
    else:
        urls = {name: f"sqlite:///{data_dir / f'{name}.sqlite3'}" for name in DATABASE_NAMES}
    engines = {name: migrated(name, urls[name]) for name in DATABASE_NAMES}
    ids = load(engines["products"], tmp_path)
    yield engines, ids
    for engine in engines.values():
        engine.dispose()
