"""A bad setting fails a Dagster run at resource creation with the CLI's one line, not a traceback.

The `Database` resource validates every setting when it is created (`Database.build`), and
raises Dagster's own resource error with that line as its message, so the run's failure event
starts with the variable and what is wrong (masked) instead of "Error executing resource_fn".
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from resources.dagster_resources import Database
from resources.database import Databases
from resources.errors import ConfigurationError


@dg.asset
def needs_database(database: dg.ResourceParam[Databases]) -> None:
    """Touches nothing: resource creation is what is under test."""


def _failure_message(resources: dict[str, object]) -> str:
    result = dg.materialize([needs_database], resources=resources, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"]
    error = failure.event_specific_data.error  # type: ignore[union-attr]
    assert error.cause is not None and error.cause.cls_name == "ConfigurationError"
    return error.message


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CONTIMG_DB_PRODUCTS_URL", "postgresql+psycopg://u:hunter2@[::1/x", "unclosed '['"),
        ("CONTIMG_DB_INGEST_URL", "sqlite://", "in-memory SQLite database"),
        ("CONTIMG_DB_POOL_SIZE", "-1", "must be at least 1, got '-1'"),
        ("CONTIMG_QA_MAX_FAIL_FRACTION", "lots", "expected a number, got 'lots'"),
    ],
)
def test_run_fails_with_the_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    message = _failure_message({"database": Database()})
    first = message.splitlines()[0]
    assert first.startswith(f"dagster._core.errors.DagsterResourceFunctionError: {variable}: ")
    assert says in first
    assert "hunter2" not in message
    assert "Error executing resource_fn" not in message


def test_a_field_set_in_code_overrides_a_bad_variable(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("CONTIMG_DB_PRODUCTS_URL", "foo://x")
    monkeypatch.setenv("CONTIMG_DB_POOL_SIZE", "zero")
    good = f"sqlite:///{data_dir / 'products.sqlite3'}"
    databases = Database(products_url=good, pool_size=2).build()
    assert databases.url("products") == good and databases.settings.pool_size == 2


def test_a_bad_url_field_is_named_by_its_field() -> None:
    with pytest.raises(ConfigurationError) as info:
        Database(hdf5_url="sqlite://").build()
    assert info.value.setting == "Database.hdf5_url"
    message = _failure_message({"database": Database(hdf5_url="mysql+mysqldb://u@h/x")})
    assert "Database.hdf5_url: dialect 'mysql' is not supported" in message.splitlines()[0]


def test_outside_a_run_only_the_database_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sensor tick (no run) tolerates what the health sensor tolerates, not a bad URL."""
    monkeypatch.setenv("CONTIMG_AUTO_MIGRATE", "perhaps")
    context = dg.build_init_resource_context()
    assert isinstance(Database().create_resource(context), Databases)
    monkeypatch.setenv("CONTIMG_DB_HDF5_URL", "sqlite://")
    with pytest.raises(dg.DagsterResourceFunctionError, match="^CONTIMG_DB_HDF5_URL: "):
        Database().create_resource(context)
