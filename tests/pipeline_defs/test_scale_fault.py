"""Fault: every backend of the contimg database is terminated while a partition run is in
progress. The run completes or fails with a clear error; running the partition again leaves
every product exactly once and loses no file.

Only the backends of this test's own database are terminated (other tests share the server).
The run is its own process (as under the daemon), so that the re-run can tell its claims on the
ingest queue belong to a process that is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from pipeline_defs.definitions import build_definitions
from pipeline_defs.instance import render_template
from resources import engines
from resources.settings import thumbnail_dir
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    image_paths,
    migrated_single_url,
    queue_rows,
    write_samples,
)
from tests.pipeline_defs.scale_support import REPO, contimg_pg_env, pg_query, set_env
from tests.services import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER

defs = build_definitions()

pytestmark = pytest.mark.postgres

IMAGES = 8
RUN_TIMEOUT_S = 180


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    engines.dispose_all()


def _completed(database: str) -> int:
    rows = pg_query(database, "SELECT count(*) FROM ingest_queue WHERE state = 'completed'")
    return int(rows[0][0])


def _terminate_backends(database: str) -> int:
    """pg_terminate_backend on every connection to `database`; how many there were."""
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def _error_classes(summary: dict) -> set[str]:
    return {e["class"] for f in summary["failures"] for e in f["errors"]}


def test_terminating_every_backend_mid_run_loses_nothing_and_duplicates_nothing(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, pg_database: str, pg_url: str
) -> None:
    incoming = isolated_env / "incoming"
    set_env(monkeypatch, contimg_pg_env(pg_url))
    set_env(monkeypatch, {"CONTIMG_INCOMING_DIRS": str(incoming), "CONTIMG_INGEST_BATCH": "1"})
    dbs = migrated_single_url(pg_url)
    engines.dispose_all()
    expected = Expected(write_samples(incoming, days=1, per_day=IMAGES, size=128, broken=False))
    day = SAMPLE_START
    home = isolated_env / "dagster_home"
    (home / "dagster.yaml").write_text(render_template("embedded", home))

    # Pre-ping off for the faulty run: killed idle connections are then not silently replaced
    # at checkout, so the fault reaches the run's code instead of being absorbed by the pool.
    env = {**os.environ, "CONTIMG_DB_POOL_PRE_PING": "0"}
    args = [sys.executable, "-m", "tests.pipeline_defs.load_driver", "--home", str(home)]
    args += ["--partition", day.isoformat(), "--kind", "in_process"]
    run = subprocess.Popen(
        args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        # Poll the queue (not a fixed sleep): strike as soon as ingest has made progress.
        while _completed(pg_database) < 1:
            assert run.poll() is None, f"the run ended before ingest progressed: {run.stderr}"
            assert time.monotonic() < deadline, "ingest made no progress"
            time.sleep(0.005)
        in_progress = run.poll() is None
        terminated = _terminate_backends(pg_database)
        out, err = run.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    assert run.returncode == 0, err[-4000:]
    assert in_progress and terminated >= 1
    summary = json.loads(out.strip().splitlines()[-1])

    if not summary["success"]:
        # A clear, typed error naming the database, never a hang or a bare driver error.
        # Lost mid-query (the usual case here) or refused while reconnecting: both typed.
        typed = {"DatabaseConnectionLostError", "DatabaseConnectionError"}
        assert typed & _error_classes(summary), summary
        message = next(
            e["message"] for f in summary["failures"] for e in f["errors"] if e["class"] in typed
        )
        assert any(
            text in message
            for text in (
                "terminating connection due to administrator command",
                "server closed the connection unexpectedly",
            )
        ), message
        assert f"@{PG_HOST}:{PG_PORT}/{pg_database}" in message

    # Run the partition again, as an operator would.
    again = defs.resolve_job_def("daily_products_job").execute_in_process(
        partition_key=day.isoformat(), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert again.success

    # Every file is catalogued exactly once, and everything derived from it exists once.
    paths = image_paths(dbs, day)
    assert sorted(paths) == sorted(expected.catalogued(day))
    assert len(paths) == len(set(paths)) == IMAGES
    states = {row.state for row in queue_rows(dbs).values()}
    assert states == {"completed"}
    assert pg_query(pg_database, "SELECT count(*), count(DISTINCT image_id) FROM image_qa") == [
        (IMAGES, IMAGES)
    ]
    thumbs = pg_query(pg_database, "SELECT path FROM thumbnails")
    assert len(thumbs) == IMAGES and all(Path(p).is_file() for (p,) in thumbs)
    assert len(list(thumbnail_dir().rglob("*.png"))) == IMAGES
    assert pg_query(
        pg_database, "SELECT count(*) FROM daily_stats WHERE obs_date = %s", (day,)
    ) == [(1,)]
    registry = pg_query(pg_database, "SELECT product_id FROM data_registry")
    assert len(registry) == len({r[0] for r in registry}) >= IMAGES
    print(
        f"fault run: success={summary['success']} errors={sorted(_error_classes(summary))} "
        f"terminated={terminated}"
    )
