"""A daily run on databases that are not migrated fails with the typed error, not `no such table`.

Runs the code location's own job (`build_definitions()`), with the Database resource reading the
URLs from the environment, as `dagster dev` and the daemon run it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from migrations import runner
from pipeline_defs.definitions import build_definitions
from resources import engines
from resources.database import forget_schema_checks
from resources.settings import DATABASE_NAMES


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_schema_checks()
    yield
    forget_schema_checks()
    engines.dispose_all()


def _failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    messages = []
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error is not None:  # Dagster wraps the asset's error: read the whole chain
            messages.append(error.message)
            error = error.cause
    return messages


@pytest.mark.parametrize("layout", ["empty files", "ingest behind head"])
def test_daily_run_on_unmigrated_databases_names_the_fix(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    fresh = data_dir / "fresh"
    fresh.mkdir()
    for name in DATABASE_NAMES:
        path = fresh / f"{name}.sqlite3"
        url = f"sqlite:///{path}"
        monkeypatch.setenv(f"CONTIMG_DB_{name.upper()}_URL", url)
        if layout == "empty files":
            sqlite3.connect(path).close()
        else:
            runner.upgrade(name, url, "ingest_0001" if name == "ingest" else "head", backup=False)

    job = build_definitions().resolve_job_def("daily_products_job")
    result = job.execute_in_process(
        partition_key="2025-10-01",
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    text = "\n".join(_failure_messages(result))
    assert "no such table" not in text
    assert "DatabaseNotMigratedError" in text
    assert "not migrated" in text and "Run `contimg db upgrade`" in text
    if layout == "ingest behind head":
        assert "database 'ingest' at revision ingest_0001: not migrated" in text
        assert "behind head ingest_0003" in text
