"""contimg_executor: the executor is chosen when a run starts, from run config or environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from pipeline_defs import executors
from pipeline_defs.definitions import build_definitions
from pipeline_defs.executors import (
    DEFAULT_BROKER,
    _celery_config,
    _multiprocess_config,
    celery_settings,
    executor_kind,
    reconstructable_job,
)
from pipeline_defs.instance import ensure_dagster_home
from resources import engines
from resources.errors import ConfigurationError
from tests.fixtures_pipeline import migrated_sqlite

defs = build_definitions()


@pytest.fixture(autouse=True)
def _no_executor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        "CONTIMG_EXECUTOR",
        "CONTIMG_CELERY_BROKER",
        "CONTIMG_CELERY_BACKEND",
        "CONTIMG_CELERY_QUEUE",
        "CONTIMG_MAX_CONCURRENT_STEPS",
        "CONTIMG_MP_START_METHOD",
    ):
        monkeypatch.delenv(var, raising=False)
    yield
    engines.dispose_all()


def test_every_job_uses_the_contimg_executor() -> None:
    for name in ("daily_products_job", "database_status", "migrate_databases"):
        assert defs.resolve_job_def(name).executor_def.name == "contimg_executor"


def test_kind_comes_from_run_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert executor_kind({}) == "in_process"  # the measured embedded default
    monkeypatch.setenv("CONTIMG_EXECUTOR", "Celery")
    assert executor_kind({}) == "celery"
    assert executor_kind({"kind": "in-process"}) == "in_process"
    monkeypatch.setenv("CONTIMG_EXECUTOR", "k8s")
    with pytest.raises(ConfigurationError) as excinfo:
        executor_kind({})
    assert "CONTIMG_EXECUTOR" in str(excinfo.value) and "'k8s'" in str(excinfo.value)


def test_celery_settings_default_to_local_redis_and_follow_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert celery_settings() == {
        "broker": DEFAULT_BROKER,
        "backend": DEFAULT_BROKER,
        "queue": "dagster",
    }
    monkeypatch.setenv("CONTIMG_CELERY_BROKER", "redis://broker:6379/3")
    monkeypatch.setenv("CONTIMG_CELERY_QUEUE", "contimg")
    assert celery_settings() == {
        "broker": "redis://broker:6379/3",
        "backend": "redis://broker:6379/3",
        "queue": "contimg",
    }
    config = _celery_config({"backend": "redis://results:6379/1", "config_source": {"x": 1}})
    assert config["backend"] == "redis://results:6379/1"
    assert config["config_source"] == {"x": 1, "task_default_queue": "contimg"}


def test_multiprocess_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    config = _multiprocess_config({})
    assert config["max_concurrent"] is None and config["start_method"] == {"spawn": {}}
    monkeypatch.setenv("CONTIMG_MAX_CONCURRENT_STEPS", "3")
    monkeypatch.setenv("CONTIMG_MP_START_METHOD", "forkserver")
    config = _multiprocess_config({})
    assert config["max_concurrent"] == 3
    assert config["start_method"] == {"forkserver": {"preload_modules": ["pipeline_defs.preload"]}}
    monkeypatch.setenv("CONTIMG_MP_START_METHOD", "fork")
    with pytest.raises(ConfigurationError, match="CONTIMG_MP_START_METHOD"):
        _multiprocess_config({})


def _engine_events(result: dg.ExecuteJobResult) -> list[str]:
    return [e.message or "" for e in result.all_events if e.event_type_value == "ENGINE_EVENT"]


def test_in_process_kind_runs_the_steps_in_the_launching_process(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated_sqlite(data_dir)
    ensure_dagster_home()
    monkeypatch.setenv("CONTIMG_EXECUTOR", "in_process")
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(reconstructable_job("database_status"), instance=instance)
        assert result.success
        assert f"Executing steps in process (pid: {os.getpid()})" in _engine_events(result)


def test_an_unknown_kind_fails_the_run_with_the_variable_named(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_dagster_home()
    monkeypatch.setenv("CONTIMG_EXECUTOR", "threads")
    with (
        dg.DagsterInstance.get() as instance,
        pytest.raises(ConfigurationError, match="unknown executor 'threads'"),
    ):
        dg.execute_job(reconstructable_job("database_status"), instance=instance)


def test_in_process_kind_closes_connections_when_each_step_ends(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `database` pool slot of a step must not outlive its connections (scaling.md, 3)."""
    migrated_sqlite(data_dir)
    ensure_dagster_home()
    monkeypatch.setenv("CONTIMG_EXECUTOR", "in_process")
    released: list[int] = []
    monkeypatch.setattr(executors, "release_connections", lambda: released.append(1))
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(reconstructable_job("database_status"), instance=instance)
        assert result.success
        steps = [e for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    assert steps and len(released) == len(steps)
