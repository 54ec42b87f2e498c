"""What the Launchpad shows operators (resource and config descriptions) is written for them:
every field described, no implementation notes."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pytest

from pipeline_defs.definitions import build_definitions
from pipeline_defs.jobs.database import MigrateDatabasesConfig, MigrationTargets, RollbackConfig
from pipeline_defs.jobs.fits_cache import InvalidateFitsCacheConfig

#: Words of notes to developers: how something is wired, not what an operator should enter.
DEVELOPER_WORDS = (
    "EnvVar",
    "dg.",
    "Do not wire",
    "config mapping",
    "create_resource",
    "ResourceParam",
)


def _fields(config_type: Any) -> dict[str, Any]:
    return dict(config_type.fields) if hasattr(config_type, "fields") else {}


def _check(where: str, description: str | None) -> None:
    assert description and description.strip(), f"{where}: no description"
    for word in DEVELOPER_WORDS:
        assert word not in description, f"{where}: developer note {word!r}: {description}"


def test_resources_are_described_for_operators() -> None:
    defs = build_definitions()
    job = defs.resolve_job_def("database_status")
    for key, resource in job.resource_defs.items():
        if key == "io_manager":
            continue
        _check(f"resource {key}", resource.description)
        fields = _fields(resource.config_schema.config_type)
        assert fields, f"resource {key}: no config fields found"
        for name, field in fields.items():
            _check(f"resource {key}.{name}", field.description)


@pytest.mark.parametrize(
    "config", [MigrateDatabasesConfig, MigrationTargets, RollbackConfig, InvalidateFitsCacheConfig]
)
def test_job_config_is_described_for_operators(config: type[dg.Config]) -> None:
    if config is not InvalidateFitsCacheConfig:  # not this module's: its fields only
        _check(config.__name__, config.__doc__)
    schema = config.to_config_schema().as_field().config_type
    for name, field in _fields(schema).items():
        if config is MigrationTargets:
            continue  # one revision per database: the class docstring says what they take
        _check(f"{config.__name__}.{name}", field.description)
