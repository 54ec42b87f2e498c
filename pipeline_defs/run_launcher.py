"""The run launcher of contimg's instances: Dagster's default one, plus a run-worker health check.

Dagster's run monitoring (the daemon's MONITORING loop, `run_monitoring:` in dagster.yaml) marks
a `STARTED` run FAILURE when the launcher says its worker is gone, but `DefaultRunLauncher` has
no such check (`supports_check_run_worker_health` is False): with it, monitoring only enforces
the start/cancel timeouts. The code server that launched a run notices its child die, but a run
executed in a CLI process (`dg launch`, `contimg demo`) has no code server, and a code server
killed together with its runs (`kill -9` of `dg dev`, a host reboot) tells nobody: such runs
stayed `STARTED` forever. This launcher answers the health check from the worker's pid, which
Dagster records on the run's RUN_START event (written by the worker process itself):

- the worker ran on this host and the pid is gone, or now belongs to a process started after
  the run (a reused pid) -> FAILED, and monitoring marks the run FAILURE;
- alive -> RUNNING; and when the worker's host cannot be known to be this one (a code server on
  another host, a CLI run against a shared PostgreSQL instance without a `contimg/host` tag)
  RUNNING as well: a wrong FAILED would fail a healthy run, a wrong RUNNING only waits for
  `max_runtime_seconds` (docs/ops/scaling.md, "Run monitoring").

Runs are never resumed (`max_resume_run_attempts: 0`): the default launcher cannot resume.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.tags import GRPC_INFO_TAG

from resources import processes

#: Optional run tag naming the host a run worker runs on (compared with this host's name).
HOST_TAG = "contimg/host"
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", ""}
#: A process started this long after the run's RUN_START event cannot be its worker.
_START_SLACK_SECONDS = 2.0


def _this_host() -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    return {n for n in names if n} | _LOCAL_NAMES


def _process_start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds; Linux /proc), None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    # Field 22 (starttime, clock ticks since boot) counted after the ")" closing the name.
    fields = stat[stat.rindex(")") + 2 :].split()
    try:
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError, OSError):
        return None


def pid_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether `pid` runs and (when `started_by` is given) started no later than that time."""
    if not processes.pid_alive(pid):
        return False
    if started_by is not None:
        began = _process_start_time(pid)
        if began is not None and began > started_by + _START_SLACK_SECONDS:
            return False
    return True


class ContimgRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` that can tell run monitoring whether a run's worker still exists."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def _worker_is_local(self, run: DagsterRun) -> bool:
        tags = run.tags or {}
        if HOST_TAG in tags:
            return tags[HOST_TAG] in _this_host()
        if GRPC_INFO_TAG in tags:
            try:
                info = json.loads(tags[GRPC_INFO_TAG])
            except ValueError:
                return False
            return bool(info.get("socket")) or str(info.get("host") or "") in _this_host()
        # A run of no code server ran in a CLI process; with SQLite run storage (files under
        # DAGSTER_HOME) that process ran on this host.
        return isinstance(self._instance.run_storage, SqliteRunStorage)

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if not self._worker_is_local(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker on another host: unknown")
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1
        ).records
        event = records[0].event_log_entry if records else None
        pid = event.dagster_event.pid if event and event.dagster_event else None
        if event is None or pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid recorded yet")
        if pid_alive(pid, started_by=event.timestamp):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker (pid {pid} on {socket.gethostname()}) is gone: it was killed or "
            "its host restarted",
        )
