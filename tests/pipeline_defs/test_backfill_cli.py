"""Command-line backfills end to end, as the README has them: `dg launch`, `dagster job backfill`
and the daemon of `make ui`, real processes against a temporary DAGSTER_HOME and SQLite
databases; the database rows and the UI's own GraphQL answers are the verdict.

Steps run in the run process (CONTIMG_EXECUTOR=in_process): the multiprocess executor would
start one Python process per step and day, which costs minutes on a shared two-core machine and
tests Dagster rather than contimg. The kill test kills the whole process group anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from dagster._core.execution.backfill import BulkActionStatus
from sqlalchemy import select

from pipeline_defs.cli import main as contimg_cli
from pipeline_defs.location import CODE_LOCATION, LOCATION_TAGS, REPOSITORY_LABEL_TAG
from resources.database import Databases
from resources.repositories.products import DAILY, QA, THUMBS
from tests.fixtures_pipeline import (
    SAMPLE_START,
    Expected,
    failed_classes,
    image_paths,
    queue_rows,
    write_samples,
)
from tests.resources.metrics_support import free_port
from tests.test_docs_commands import readme_command

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
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


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # CONTIMG_DATA_DIR and DAGSTER_HOME of this test (conftest)
    env.update(CONTIMG_EXECUTOR="in_process", PYTHONWARNINGS="ignore", **extra)
    return env


def run_cli(command: list[str], env: dict[str, str] | None = None, timeout: float = 180) -> str:
    """A documented command (`dg ...`, `dagster ...`) from the project directory, as typed."""
    proc = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
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


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


JOB_RUNS = """
query JobRuns($selector: PipelineSelector!) {
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline { runs(limit: 50) { runId status } }
  }
}
"""


@pytest.fixture
def make_ui(home: Path) -> Iterator[Callable[[], tuple[subprocess.Popen, str]]]:
    """`make ui` as the README has it (init-home, then `dg dev`: webserver and daemon), started
    on demand on a free port; always stopped (TERM to its process group, then KILL)."""
    procs: list[subprocess.Popen] = []
    log = home / "make-ui.log"

    def start() -> tuple[subprocess.Popen, str]:
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["make", "ui", f"UI_PORT={port}"],
                cwd=REPO,
                env=cli_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # make, dg dev, webserver, daemon, code servers, runs
            )
        procs.append(proc)

        def serving() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"make ui exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            return "Serving dagster-webserver on" in log.read_text(errors="replace")

        wait_for(serving, deadline_s=150, what="make ui to serve the UI")
        return proc, f"http://127.0.0.1:{port}"

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


def test_readme_backfills_run_and_show_under_make_ui(
    home: Path,
    dbs: Databases,
    data_dir: Path,
    make_ui: Callable[[], tuple[subprocess.Popen, str]],
) -> None:
    """Both README backfills, then the UI of `make ui`: the daemon `make ui` started launches the
    queued runs (they are filed under the location it serves), and the job's page lists every
    run, the one `dg launch` executed in its own process included."""
    expected = Expected(write_samples(data_dir / "incoming"))
    launch = readme_command("dg launch")
    assert RANGE in launch, launch
    run_cli(shlex.split(launch))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (range_run,) = instance.get_runs()
        assert range_run.status == dg.DagsterRunStatus.SUCCESS
        assert range_run.job_name == "daily_products_job"
        assert range_run.tags["dagster/asset_partition_range_start"] == DAYS[0].isoformat()
        assert range_run.tags["dagster/asset_partition_range_end"] == DAYS[-1].isoformat()
    assert_sample_rows(dbs, expected)

    proc, url = make_ui()
    backfill = readme_command("dagster job backfill")
    assert f"--from {DAYS[0].isoformat()} --to {DAYS[-1].isoformat()}" in backfill, backfill
    assert "Launched backfill job" in run_cli(shlex.split(backfill))
    with dg.DagsterInstance.from_config(str(home)) as instance:

        def finished() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"make ui exited with {proc.returncode}")
            runs = instance.get_runs()
            return len(runs) == 4 and all(r.is_finished for r in runs)

        wait_for(finished, deadline_s=240, what="the three runs of the daemon's backfill")
        queued = [r for r in instance.get_runs() if r.run_id != range_run.run_id]
        assert {r.status for r in queued} == {dg.DagsterRunStatus.SUCCESS}, [
            (r.tags.get("dagster/partition"), r.status, r.tags) for r in queued
        ]
        assert sorted(r.tags["dagster/partition"] for r in queued) == [d.isoformat() for d in DAYS]
        assert all(r.remote_job_origin.location_name == CODE_LOCATION for r in queued)
        (record,) = instance.get_backfills()
        # A job backfill says COMPLETED whatever its runs did; the runs above are the verdict.
        assert record.status == BulkActionStatus.COMPLETED, record.status
    # The UI files a job's runs by the repository label; the in-process run carries the same one.
    data = _graphql(
        url,
        JOB_RUNS,
        {
            "selector": {
                "pipelineName": "daily_products_job",
                "repositoryName": "__repository__",
                "repositoryLocationName": CODE_LOCATION,
            }
        },
    )
    shown = data["pipelineOrError"]["runs"]
    assert {r["runId"] for r in shown} == {r.run_id for r in [range_run, *queued]}
    # (the label is a hidden tag: GraphQL leaves it out, the instance has it)
    labels = {r.tags.get(REPOSITORY_LABEL_TAG) for r in [range_run, *queued]}
    assert labels == {LOCATION_TAGS[REPOSITORY_LABEL_TAG]}
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
    command = ["dg", "launch", "--assets", "fits_metadata", "--partition", SAMPLE_START.isoformat()]
    proc = subprocess.Popen(
        [str(BIN / command[0]), *command[1:]],
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

    run_cli(command, env=env)
    assert Counter(image_paths(dbs)) == Counter(expected_paths)  # each exactly once
    rows = queue_rows(dbs)
    assert Counter(r.state for r in rows.values()) == {"completed": n_files}
    # the rows the killed run held were claimed twice; none got lost on the way
    assert max(r.attempts for r in rows.values()) <= 2
