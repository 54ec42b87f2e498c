"""Fault: a run's process is killed with SIGKILL. The daemon's run monitoring, as the instance
of `contimg init-home` configures it, marks the run FAILURE instead of leaving it STARTED.

The daemon is started the way docs/architecture.md says production runs it
(`dagster-daemon run -w workspace.yaml`); `make ui`'s `dg dev` starts the same daemon. The
run is executed in a CLI-like process (`tests/pipeline_defs/blocking_run.py`) so that no code
server is left to notice its death: only monitoring can.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from pipeline_defs.run_launcher import ContimgRunLauncher
from tests.pipeline_defs.scale_support import REPO
from tests.processes import child_at, kill9

BIN = Path(sys.executable).parent
#: Daemon start (loads the code location) plus one monitoring iteration, with margin.
MARKED_WITHIN_S = 90.0


def _status(home: Path, run_id: str) -> dg.DagsterRunStatus:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        return run.status


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_killed_run_is_marked_failed_by_run_monitoring(isolated_env: Path) -> None:
    home = isolated_env / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    init = subprocess.run(
        [str(BIN / "contimg"), "init-home"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert isinstance(instance.run_launcher, ContimgRunLauncher)
        assert instance.run_monitoring_max_resume_run_attempts == 0

    blocking_run = [sys.executable, "-m", "tests.pipeline_defs.blocking_run"]
    with child_at(blocking_run, "started ", cwd=REPO, env=env) as (worker, line):
        run_id = line.split()[1]
        assert _status(home, run_id) == dg.DagsterRunStatus.STARTED
        kill9(worker)
    # The fault as operators saw it: nobody is left to end the run.
    assert _status(home, run_id) == dg.DagsterRunStatus.STARTED

    # A healthy run in the same instance must not be touched by the monitoring.
    alive = subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline_defs.blocking_run"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    daemon = None
    try:
        assert alive.stdout is not None
        alive_line = alive.stdout.readline()
        assert alive_line.startswith("started "), alive_line
        alive_id = alive_line.split()[1]
        started = time.monotonic()
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = started + MARKED_WITHIN_S
        status = _status(home, run_id)
        while status != dg.DagsterRunStatus.FAILURE:
            assert daemon.poll() is None, "dagster-daemon exited"
            assert time.monotonic() < deadline, f"still {status} after {MARKED_WITHIN_S} s"
            time.sleep(0.5)  # polling a real condition with a deadline
            status = _status(home, run_id)
        elapsed = time.monotonic() - started
        assert _status(home, alive_id) == dg.DagsterRunStatus.STARTED
        # the healthy run finishes normally once released
        assert alive.stdin is not None
        alive.stdin.close()
        assert alive.wait(60) == 0
        assert _status(home, alive_id) == dg.DagsterRunStatus.SUCCESS
    finally:
        if daemon is not None:
            _stop(daemon)
        if alive.poll() is None:
            alive.kill()
            alive.wait(10)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        failure = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        assert len(failure) == 1
        message = failure[0].event_log_entry.dagster_event.message or ""  # type: ignore[union-attr]
        assert "is gone" in message, message
    print(f"marked FAILURE {elapsed:.1f} s after the daemon started")
