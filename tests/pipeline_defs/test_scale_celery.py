"""A backfill of the real assets through the Celery executor: real worker processes, the Redis
broker, Dagster's storage and the five contimg databases in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from pipeline_defs.executors import reconstructable_job
from resources import engines
from resources.database import Databases
from resources.repositories.products import IMAGES
from resources.settings import thumbnail_dir
from tests.fixtures_pipeline import SAMPLE_START, Expected, image_paths, migrated_single_url
from tests.fixtures_pipeline import write_samples as write_sample_files
from tests.pipeline_defs.scale_support import (
    REDIS_URL,
    celery_workers,
    contimg_pg_env,
    materializations,
    materializations_by_day,
    partition_range_tags,
    pg_query,
    production_env,
    set_env,
    write_production_home,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ASSETS = (
    "fits_metadata", "image_thumbnails", "image_qa", "image_sources", "pipeline_stats",
    "source_associations", "forced_photometry", "source_variability",
)  # fmt: skip
#: The steps of the daily job: image_products makes the first four assets
#: (assets/products/definitions.py), source_catalogue the last three.
STEPS = ("image_products", "pipeline_stats", "source_catalogue")
RUN_TIMEOUT_S = 240


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


def _execute_with_timeout(instance: dg.DagsterInstance, tags: dict[str, str]):
    """execute_job in a thread: if the workers died, fail after a bound instead of hanging."""
    box: dict[str, object] = {}

    def target() -> None:
        box["result"] = dg.execute_job(
            reconstructable_job("daily_products_job"),
            instance=instance,
            tags=tags,
            raise_on_error=False,
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(RUN_TIMEOUT_S)
    assert not thread.is_alive(), f"the Celery run did not finish within {RUN_TIMEOUT_S} s"
    return box["result"]


def test_backfill_runs_every_step_in_celery_workers(
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_available: None,
    pg_database: str,
    pg_url: str,
    tmp_path: Path,
) -> None:
    write_production_home(isolated_env / "dagster_home")
    set_env(monkeypatch, production_env(pg_database))
    set_env(monkeypatch, contimg_pg_env(pg_url))
    incoming = isolated_env / "incoming"
    set_env(
        monkeypatch,
        {
            "CONTIMG_INCOMING_DIRS": str(incoming),
            "CONTIMG_EXECUTOR": "celery",
            "CONTIMG_CELERY_BROKER": REDIS_URL,
            "CONTIMG_CELERY_BACKEND": REDIS_URL,
        },
    )
    dbs: Databases = migrated_single_url(pg_url)
    expected = Expected(write_sample_files(incoming, days=2, per_day=3, size=64, broken=False))
    days = expected.days()
    assert days == [SAMPLE_START, SAMPLE_START + dt.timedelta(days=1)]

    with celery_workers(tmp_path / "celery", workers=1, concurrency=2) as workers:
        monkeypatch.setenv("CONTIMG_CELERY_QUEUE", workers.queue)
        with dg.DagsterInstance.get() as instance:
            result = _execute_with_timeout(
                instance, partition_range_tags(days[0].isoformat(), days[-1].isoformat())
            )
            assert result.success, workers.log()[-4000:]
            metadata = materializations(instance, result.run_id)
            by_day = materializations_by_day(instance, result.run_id)
            # Where each step ran, checked while the workers are alive (their pids are live).
            step_pids = {key: metadata[key]["step_pid"] for key in ASSETS}
            groups = {key: os.getpgid(pid) for key, pid in step_pids.items()}
        engine_messages = [
            e.message or "" for e in result.all_events if e.event_type_value == "ENGINE_EVENT"
        ]

    # Every step ran in a process of the worker's process group, none in this process.
    assert set(metadata) == set(ASSETS)
    assert os.getpid() not in step_pids.values()
    assert set(groups.values()) <= workers.pgids, (groups, workers.pgids)
    for key in STEPS:
        assert f'Submitting celery task for step "{key}" to queue "{workers.queue}".' in (
            engine_messages
        )
        assert f"[CeleryExecutor] Executing steps {key} in celery worker" in engine_messages

    # The products of both days are in PostgreSQL, once each.
    for day in days:
        assert sorted(image_paths(dbs, day)) == sorted(expected.catalogued(day))
    with dbs.connect("products") as conn:
        assert conn.execute(select(func.count()).select_from(IMAGES)).scalar_one() == 6
    qa = pg_query(pg_database, "SELECT count(*) FROM image_qa")
    assert qa == [(6,)]
    stats = pg_query(pg_database, "SELECT obs_date, n_images FROM daily_stats ORDER BY obs_date")
    assert stats == [(days[0], 3), (days[1], 3)]
    pngs = sorted(p.name for p in thumbnail_dir().rglob("*.png"))
    assert len(pngs) == 6
    # ... and the run itself in Dagster's PostgreSQL storage.
    assert pg_query(pg_database, "SELECT status FROM runs WHERE run_id = %s", (result.run_id,)) == [
        ("SUCCESS",)
    ]
    for day in days:
        assert by_day[("fits_metadata", day.isoformat())]["images_upserted"] == 3
