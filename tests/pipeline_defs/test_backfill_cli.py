"""Command-line backfills end to end: real `dagster` / `dagster-daemon` processes against a
temporary DAGSTER_HOME and SQLite databases; the database rows are the verdict.

Steps run in the run process (CONTIMG_EXECUTOR=in_process): the multiprocess executor would
start one Python process per step and day, which costs minutes on a shared two-core machine and
tests Dagster rather than contimg. The kill test kills the whole process group anyway.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from pipeline_defs.cli import main as contimg_cli
from resources.database import Databases
from resources.repositories.products import DAILY, QA, THUMBS
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    failed_classes,
    image_paths,
    migrated_sqlite,
    queue_rows,
    write_samples,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ASSETS = "fits_metadata,image_thumbnails,image_qa,pipeline_stats"
DAYS = [SAMPLE_START + dt.timedelta(days=i) for i in range(3)]
RANGE = f"{DAYS[0].isoformat()}...{DAYS[-1].isoformat()}"

pytestmark = pytest.mark.slow


@pytest.fixture
def home(data_dir: Path) -> Path:
    """DAGSTER_HOME with the dagster.yaml `contimg init-home` writes."""
    result = CliRunner().invoke(contimg_cli, ["init-home"])
    assert result.exit_code == 0, result.output
    path = Path(os.environ["DAGSTER_HOME"])
    assert (path / "dagster.yaml").is_file()
    return path


@pytest.fixture
def dbs(data_dir: Path) -> Databases:
    return migrated_sqlite(data_dir)


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # CONTIMG_DATA_DIR and DAGSTER_HOME of this test (conftest)
    env.update(CONTIMG_EXECUTOR="in_process", PYTHONWARNINGS="ignore", **extra)
    return env


def dagster(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    proc = subprocess.run(
        [str(BIN / "dagster"), *args],
        check=False,
        cwd=REPO,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def wait_for(
    condition: Callable[[], bool], *, deadline_s: float, what: str, interval: float = 0.5
) -> None:
    """Poll until `condition()` holds; fail naming `what` at the deadline."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(interval)  # a poll interval, not a synchronisation


def assert_sample_rows(dbs: Databases, expected: Expected) -> None:
    """Exactly the expected rows for the three sample days."""
    assert Counter(image_paths(dbs)) == Counter(expected.catalogued())
    assert failed_classes(dbs) == expected.failed()
    states = Counter(r.state for r in queue_rows(dbs).values())
    assert states == {
        "completed": len(expected.catalogued()),
        "failed": len(expected.failed()),
    }
    with dbs.connect("products") as conn:
        assert sorted(conn.execute(select(DAILY.c.obs_date)).scalars()) == DAYS
        assert len(conn.execute(select(QA.c.image_id)).all()) == len(expected.catalogued())
        assert len(conn.execute(select(THUMBS.c.image_id)).all()) == len(expected.catalogued())


def test_materialize_partition_range_in_one_run(home: Path, dbs: Databases, data_dir: Path) -> None:
    expected = Expected(write_samples(data_dir / "incoming"))
    dagster(
        "asset", "materialize", "-m", "pipeline_defs.definitions", "--select", ASSETS,
        "--partition-range", RANGE,
    )  # fmt: skip
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert runs[0].tags["dagster/asset_partition_range_start"] == DAYS[0].isoformat()
        assert runs[0].tags["dagster/asset_partition_range_end"] == DAYS[-1].isoformat()
    assert_sample_rows(dbs, expected)


@pytest.fixture
def daemon(home: Path) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start `dagster-daemon run` on demand; always stopped (TERM, then KILL) afterwards."""
    procs: list[subprocess.Popen] = []
    log = home / "daemon.log"

    def start() -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-m", "pipeline_defs.definitions"],
                cwd=REPO,
                env=cli_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its code server and run workers share the group
            )
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen, grace_s: float = 20) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (code servers)
    except ProcessLookupError:
        pass
    proc.wait()


def test_job_backfill_run_by_the_daemon(
    home: Path,
    dbs: Databases,
    data_dir: Path,
    daemon: Callable[[], subprocess.Popen],
) -> None:
    expected = Expected(write_samples(data_dir / "incoming"))
    out = dagster(
        "job", "backfill", "-m", "pipeline_defs.definitions", "-j", "daily_products_job",
        "--from", DAYS[0].isoformat(), "--to", DAYS[-1].isoformat(), "--noprompt",
    )  # fmt: skip
    assert "Launched backfill job" in out
    proc = daemon()
    with dg.DagsterInstance.from_config(str(home)) as instance:

        def finished() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"dagster-daemon exited with {proc.returncode}")
            runs = instance.get_runs()
            return len(runs) == 3 and all(r.is_finished for r in runs)

        wait_for(finished, deadline_s=150, what="the three backfill runs")
        runs = instance.get_runs()
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, [
            (r.tags.get("dagster/partition"), r.status) for r in runs
        ]
        assert sorted(r.tags["dagster/partition"] for r in runs) == [d.isoformat() for d in DAYS]
        assert {r.job_name for r in runs} == {"daily_products_job"}
    _stop_group(proc)
    assert_sample_rows(dbs, expected)


def _queue_states(db_file: Path) -> Counter:
    if not db_file.exists():
        return Counter()
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5)
    try:
        return Counter(
            dict(conn.execute("SELECT state, count(*) FROM ingest_queue GROUP BY state").fetchall())
        )
    except sqlite3.OperationalError:  # locked for a moment by the writer: try again next poll
        return Counter()
    finally:
        conn.close()


def test_killed_run_leaves_nothing_duplicated_or_stuck(
    home: Path, dbs: Databases, data_dir: Path
) -> None:
    n_files = 160
    incoming = data_dir / "incoming"
    originals = write_samples(incoming, days=1, per_day=8, broken=False)
    for i in range(n_files - len(originals)):  # cheap copies, each its own file and row
        source = originals[i % len(originals)].path
        shutil.copy2(source, incoming / f"copy{i:03d}_{source.name}")
    expected_paths = {str(p) for p in incoming.glob("*.fits")}
    assert len(expected_paths) == n_files
    env = cli_env(CONTIMG_INGEST_BATCH="4", CONTIMG_FITS_MAX_WORKERS="1")
    command = [
        str(BIN / "dagster"), "asset", "materialize", "-m", "pipeline_defs.definitions",
        "--select", "fits_metadata", "--partition", SAMPLE_START.isoformat(),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ingest_db = data_dir / "ingest.sqlite3"
    seen: Counter = Counter()
    try:

        def mid_way() -> bool:
            nonlocal seen
            seen = _queue_states(ingest_db)
            if proc.poll() is not None:
                pytest.fail(f"the run ended ({proc.returncode}) before it could be killed: {seen}")
            return seen["completed"] > 0 and seen["completed"] < n_files

        wait_for(mid_way, deadline_s=120, what="the ingest to be half-way", interval=0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    after_kill = _queue_states(ingest_db)
    assert 0 < after_kill["completed"] < n_files, after_kill

    dagster(*command[1:], env=env)
    assert Counter(image_paths(dbs)) == Counter(expected_paths)  # each exactly once
    rows = queue_rows(dbs)
    assert Counter(r.state for r in rows.values()) == {"completed": n_files}
    # the rows the killed run held were claimed twice; none got lost on the way
    assert max(r.attempts for r in rows.values()) <= 2
