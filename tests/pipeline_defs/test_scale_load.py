"""Bounded database load: concurrent partition runs against a PostgreSQL role whose connection
limit is deliberately small. With the `database` concurrency pool limited, every run succeeds;
without it, steps fail fast with a clear DatabaseConnectionError (too many connections), and
nothing hangs.

The runs are launched as the daemon would, one process each (tests/pipeline_defs/load_driver.py),
and their steps execute in a Celery worker with as many pool processes as there are runs, so
without the pool nothing but the database limits how many steps hold connections at once. The
worker's pool processes are started once and stay warm, which keeps this test affordable on two
cores; the multiprocess executor obeys the same pool (`load_driver --kind multiprocess`) but
starts a process per step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import psycopg
import pytest

from pipeline_defs.instance import TEMPLATES
from resources import engines
from resources.settings import DATABASE_NAMES
from tests.fixtures_pipeline import SAMPLE_START, migrate_all, write_samples
from tests.pipeline_defs.scale_support import (
    REDIS_URL,
    REPO,
    celery_workers,
    contimg_pg_env,
    production_env,
)
from tests.services import (
    PG_ADMIN_DB,
    PG_HOST,
    PG_PORT,
    PG_USER,
    pg_execute_admin,
    temporary_pg_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# Each step opens at most one connection per logical database it touches (pool_size 1,
# max_overflow 0) and touches at most 3 of them (fits_metadata: ingest, products,
# data_registry). The role allows exactly what the pool limit needs: limit x 3. Without the pool,
# two steps at once (even image_thumbnails and image_qa of one run) can need more.
PER_STEP = 3
POOL_LIMIT = 1
ROLE_LIMIT = POOL_LIMIT * PER_STEP
RUNS = 3
DRIVER_TIMEOUT_S = 150


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


@contextmanager
def limited_role(limit: int) -> Iterator[str]:
    role = f"contimg_load_{uuid.uuid4().hex[:8]}"
    pg_execute_admin(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT {limit}')
    try:
        yield role
    finally:
        pg_execute_admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
        )
        pg_execute_admin(f'DROP ROLE IF EXISTS "{role}"')


def _home(path: Path, *, pool_limit: int | None) -> Path:
    """The production dagster.yaml, with the `database` pool limit set or removed."""
    path.mkdir(parents=True)
    text = (TEMPLATES / "production.yaml").read_text()
    assert "    default_limit: 4\n" in text
    replacement = f"    default_limit: {pool_limit}\n" if pool_limit is not None else ""
    (path / "dagster.yaml").write_text(text.replace("    default_limit: 4\n", replacement))
    return path


class PeakConnections:
    """Peak number of `pg_stat_activity` rows of one role, sampled every 20 ms."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True
        ) as conn:
            while not self._stop.wait(0.02):
                row = conn.execute(sql, (self.role,)).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                self.samples += 1


def _drive(home: Path, role: str, partitions: list[str], env: dict) -> dict:
    """One run per partition, all at once, each in its own interpreter (load_driver)."""
    child_env = dict(env)
    child_env["DAGSTER_HOME"] = str(home)
    procs = []
    with PeakConnections(role) as peak:
        try:
            for partition in partitions:
                args = [sys.executable, "-m", "tests.pipeline_defs.load_driver"]
                args += ["--home", str(home), "--partition", partition]
                procs.append(
                    subprocess.Popen(
                        args,
                        env=child_env,
                        cwd=REPO,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            deadline = time.monotonic() + DRIVER_TIMEOUT_S
            runs = []
            for proc in procs:
                out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
                assert proc.returncode == 0, err[-4000:]
                runs.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
    return {"runs": runs, "peak_connections": peak.peak, "samples": peak.samples}


def _init_home(home: Path, env: dict) -> str:
    """`contimg init-home --profile production` as an operator runs it; its pool line."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "contimg"), "init-home", "--profile", "production"],
        check=False,
        env={**env, "DAGSTER_HOME": str(home)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _days(first: int, n: int) -> list[str]:
    return [SAMPLE_START.replace(day=SAMPLE_START.day + first + i).isoformat() for i in range(n)]


def test_the_database_pool_bounds_connections_and_its_absence_fails_clearly(
    isolated_env: Path, tmp_path: Path, redis_available: None
) -> None:
    incoming = isolated_env / "incoming"
    write_samples(incoming, days=2 * RUNS, per_day=1, size=64, broken=False)
    with (
        limited_role(ROLE_LIMIT) as role,
        temporary_pg_database() as contimg_db,
        temporary_pg_database() as storage_on,
        temporary_pg_database() as storage_off,
    ):
        pg_execute_admin(f'ALTER DATABASE "{contimg_db}" OWNER TO "{role}"')
        url = f"postgresql+psycopg://{role}@{PG_HOST}:{PG_PORT}/{contimg_db}"
        migrate_all(dict.fromkeys(DATABASE_NAMES, url))
        engines.dispose_all()
        # Two instances differing only in the pool limit, each with its own storage, each set up
        # as docs/ops/scaling.md tells operators to (`contimg init-home` writes the pool limit
        # into the storage before any run claims a slot).
        on = _home(tmp_path / "on", pool_limit=POOL_LIMIT)
        off = _home(tmp_path / "off", pool_limit=None)
        env = dict(os.environ)
        env.update(contimg_pg_env(url))
        env.update(
            {
                "DAGSTER_HOME": str(on),
                "CONTIMG_INCOMING_DIRS": str(incoming),
                "CONTIMG_DB_POOL_SIZE": "1",
                "CONTIMG_DB_MAX_OVERFLOW": "0",
                "CONTIMG_DB_POOL_TIMEOUT": "5",
                "CONTIMG_DB_CONNECT_TIMEOUT": "5",
                "CONTIMG_EXECUTOR": "celery",
                "CONTIMG_CELERY_BROKER": REDIS_URL,
                "CONTIMG_CELERY_BACKEND": REDIS_URL,
            }
        )
        env_on = {**env, **production_env(storage_on)}
        env_off = {**env, **production_env(storage_off)}
        assert _init_home(on, env_on) == "pool database: limit 1"
        assert _init_home(off, env_off) == "pool database: no limit"
        # The workers resolve the instance's env: entries themselves: one set per instance.
        with celery_workers(tmp_path / "celery-on", concurrency=RUNS, env=env_on) as workers:
            env_on["CONTIMG_CELERY_QUEUE"] = workers.queue
            with_pool = _drive(on, role, _days(0, RUNS), env_on)
        with celery_workers(tmp_path / "celery-off", concurrency=RUNS, env=env_off) as workers:
            env_off["CONTIMG_CELERY_QUEUE"] = workers.queue
            without_pool = _drive(off, role, _days(RUNS, RUNS), env_off)

    print(json.dumps({"with_pool": with_pool, "without_pool": without_pool}, indent=1))
    # Pool on: every run succeeded, and the steps never held more than the pool allows.
    assert [r["success"] for r in with_pool["runs"]] == [True] * RUNS, with_pool
    assert with_pool["samples"] > 0
    assert 1 <= with_pool["peak_connections"] <= ROLE_LIMIT

    # Pool off: the same load exceeds the role's limit; the steps that could not connect failed
    # at once with our typed error, naming the masked URL and what to do; no run hung.
    runs = without_pool["runs"]
    failed = [r for r in runs if not r["success"]]
    assert failed, f"expected connection failures without the pool: {without_pool}"
    for run in failed:
        assert run["failures"], run
        for failure in run["failures"]:
            classes = [e["class"] for e in failure["errors"]]
            assert {"DatabaseConnectionError", "PoolExhaustedError"} & set(classes), failure
            if "DatabaseConnectionError" in classes:
                message = next(
                    e["message"]
                    for e in failure["errors"]
                    if e["class"] == "DatabaseConnectionError"
                )
                assert f'too many connections for role "{role}"' in message
                assert f"cannot connect to postgresql+psycopg://{role}@{PG_HOST}" in message
                assert "connection limit is reached" in message
        assert run["seconds"] < 90
