"""Real services for the scale-out tests and benchmark: the production Dagster instance on
PostgreSQL, the five contimg databases on PostgreSQL, and local Celery worker processes.

Plain functions and context managers (not fixtures), shared by tests/pipeline_defs/test_scale_*.py
and bench/scale_bench.py. Every worker runs in its own session (process group) and is stopped in
a `finally` (terminate, wait, kill); its Redis queue is unique and deleted afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psycopg

from pipeline_defs.instance import ensure_dagster_home
from resources.settings import DATABASE_NAMES, database_url_env_var
from tests.services import PG_HOST, PG_PORT, PG_USER, REDIS_HOST, REDIS_PORT

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
# Celery keeps task results in Redis: let them expire instead of accumulating across test runs.
RESULT_EXPIRES_S = 600


def production_env(database: str, *, user: str = PG_USER) -> dict[str, str]:
    """The DAGSTER_PG_* variables of pipeline_defs/instance_templates/production.yaml."""
    return {
        "DAGSTER_PG_USERNAME": user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_HOST": PG_HOST,
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_PORT": str(PG_PORT),
    }


def contimg_pg_env(url: str) -> dict[str, str]:
    """All five logical databases in one PostgreSQL database (each has its version table)."""
    return {database_url_env_var(name): url for name in DATABASE_NAMES}


def write_production_home(home: Path) -> Path:
    """DAGSTER_HOME with the production dagster.yaml, as `contimg init-home --profile production`."""
    os.environ["DAGSTER_HOME"] = str(home)
    return ensure_dagster_home("production")


def set_env(monkeypatch: object, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)  # type: ignore[attr-defined]


def pg_query(database: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of one query run as the admin user (outside SQLAlchemy and Dagster)."""
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database, autocommit=True
    ) as conn:
        return list(conn.execute(sql, params).fetchall())


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of a single-run backfill over first..last (what `--partition-range` sets)."""
    return {
        "dagster/asset_partition_range_start": first,
        "dagster/asset_partition_range_end": last,
    }


def materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    """asset key -> metadata (plain values) of every materialization of a run."""
    out: dict[str, dict] = {}
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        mat = record.asset_materialization
        assert mat is not None
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def materializations_by_day(
    instance: dg.DagsterInstance, run_id: str
) -> dict[tuple[str, str], dict]:
    """(asset key, partition) -> metadata of each materialization of a run: a range run records
    one per day, each with that day's own numbers."""
    out: dict[tuple[str, str], dict] = {}
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        mat = record.asset_materialization
        assert mat is not None and mat.partition is not None
        key = (mat.asset_key.to_user_string(), mat.partition)
        out[key] = {k: v.value for k, v in mat.metadata.items()}
    return out


# --- Celery workers -------------------------------------------------------------------------


@dataclass
class CeleryWorkers:
    """Local Celery worker processes listening on one queue, started as users start them."""

    queue: str
    config_yaml: Path
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def pgids(self) -> set[int]:
        """Process groups of the workers: every pool process of a worker belongs to one."""
        return {p.pid for p in self.processes}

    def log(self, index: int = 0) -> str:
        path = self.log_dir / f"worker-{index}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def worker_yaml(path: Path, broker: str = REDIS_URL) -> Path:
    """The worker config (the same block as the executor's; see celery_worker.yaml)."""
    path.write_text(
        "execution:\n"
        "  config:\n"
        f"    broker: {broker}\n"
        f"    backend: {broker}\n"
        "    config_source:\n"
        f"      result_expires: {RESULT_EXPIRES_S}\n"
    )
    return path


def worker_command(config_yaml: Path, queue: str, name: str, concurrency: int) -> list[str]:
    """The documented worker command (docs/ops/scaling.md), with this venv's executables."""
    return [
        str(VENV_BIN / "dagster-celery"),
        "worker",
        "start",
        "-A",
        "dagster_celery.app",
        "-y",
        str(config_yaml),
        "-q",
        queue,
        "-i",
        "pipeline_defs.celery_worker",
        "-n",
        name,
        "-l",
        "INFO",
        "--",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
    ]


@contextmanager
def celery_workers(
    tmp: Path,
    *,
    workers: int = 1,
    concurrency: int = 1,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 120.0,
) -> Iterator[CeleryWorkers]:
    """Start `workers` worker processes on a fresh queue; stop them and clean Redis after.

    Waits (polling the worker logs, bounded) until each worker reports `ready`, so that a worker
    that cannot start fails the test with its log instead of leaving a run waiting forever.
    """
    queue = f"contimg-test-{uuid.uuid4().hex[:10]}"
    tmp.mkdir(parents=True, exist_ok=True)
    pool = CeleryWorkers(queue=queue, config_yaml=worker_yaml(tmp / "celery.yaml"), log_dir=tmp)
    child_env = dict(os.environ if env is None else env)
    child_env["PATH"] = f"{VENV_BIN}{os.pathsep}{child_env.get('PATH', '')}"
    child_env["CONTIMG_CELERY_QUEUE"] = queue
    try:
        for i in range(workers):
            name = f"{queue}-w{i}"
            log = open(tmp / f"worker-{i}.log", "wb")  # noqa: SIM115  (closed with the process)
            proc = subprocess.Popen(
                worker_command(pool.config_yaml, queue, name, concurrency),
                env=child_env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            pool.processes.append(proc)
            pool.names.append(name)
        deadline = time.monotonic() + ready_timeout_s
        for i, proc in enumerate(pool.processes):
            while " ready." not in pool.log(i):
                if proc.poll() is not None:
                    raise RuntimeError(f"Celery worker {i} exited:\n{pool.log(i)[-4000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Celery worker {i} not ready:\n{pool.log(i)[-4000:]}")
                time.sleep(0.1)
        yield pool
    finally:
        stop_workers(pool.processes)
        clean_redis_queue(queue)


def stop_workers(processes: list[subprocess.Popen], timeout_s: float = 30.0) -> None:
    """Terminate each worker's process group, wait, then kill whatever is left."""
    for proc in processes:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for proc in processes:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            # The group may outlive its leader (pool processes): kill it in every case.
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc.poll() is None:
            proc.wait(10)


def clean_redis_queue(queue: str) -> None:
    """Delete the queue's lists (one per priority) and its exchange binding from Redis."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
        # Shared bindings (the workers' control mailboxes) list our workers among others.
        for key in client.scan_iter(match="_kombu.binding.*", _type="SET"):
            ours = [m for m in client.smembers(key) if queue.encode() in m]
            if ours:
                client.srem(key, *ours)
    finally:
        client.close()
