"""Switch prometheus_client to multiprocess mode before anything imports it.

prometheus_client decides once, when `prometheus_client.values` is first imported, whether metric
values live in process memory or in per-process mmap files under `PROMETHEUS_MULTIPROC_DIR`.
Dagster runs every run and (under the multiprocess and Celery executors) every step in its own
process, so counters incremented in a step are lost unless the directory is set *before* that first
import in *every* process. That is why this is the one place where configuration is read at import
time of a package: `pipeline_defs/__init__.py` calls `ensure_multiprocess_dir()` on its first line
(the Dagster code server, the run and step workers and the `contimg` CLI all import
`pipeline_defs` first), and child processes inherit the exported variable.

PROMETHEUS_MULTIPROC_DIR defaults to `<data dir>/prometheus` (docs/configuration.md).

Nothing is written on import: `ensure_multiprocess_dir(create=False)` only exports the variable,
and the directory is created by `create_directory_for_values()` when `resources.metrics` (the one
module that defines metric objects) is imported in multiprocess mode, i.e. by a process that is
about to record values (a run, a step, a sensor, `contimg metrics serve`). `contimg` commands
that only read (`--help`, `health`, `images`, `db status`, ...) call `keep_metrics_in_memory()`
before anything imports prometheus_client: their few values stay in memory and they leave no
directory or file behind.

Dead processes: counters and histograms of a process that exited stay in its files (that is what
makes them counters); its `live*` gauges (pool connections checked out) must disappear. A process
exiting through Python's normal shutdown removes its own `live*` files (atexit hook below). A
process killed with SIGKILL or ending through `os._exit` cannot; the exporter removes the `live*`
files of every pid that no longer exists at each scrape (`pipeline_defs/monitoring/exporter.py`). A new
process that happens to reuse a dead process's pid would read that process's stale `live*` values
back, so this bootstrap also removes `live*` files carrying its own pid before the first metric is
created.

Metrics never stop a process. When the directory cannot be created or written (a read-only
data directory, a mount without write permission), `prepare_values_directory()` withholds the
variable before prometheus_client is imported, so the process keeps its values in memory, and
logs one warning naming the directory and the variable to fix. Readers (`metrics dump`, the
exporter) still read whatever files the directory holds.

This module must not import prometheus_client at module level.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import sys
from pathlib import Path

from resources.settings import data_dir, env_str

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
DATA_DIR_ENV_VAR = "CONTIMG_DATA_DIR"
LIVE_GAUGE_FILE_GLOB = "gauge_live*_{pid}.db"

log = logging.getLogger(__name__)

_bootstrapped_pid: int | None = None
#: Why this process does not write metric files (None: it does, or has not decided yet).
_switched_off: str | None = None


def default_multiprocess_dir() -> Path:
    return data_dir() / "prometheus"


def configured_multiprocess_dir() -> Path | None:
    """The directory named by PROMETHEUS_MULTIPROC_DIR in this process, if any."""
    # prometheus_client owns this variable, so it is read here rather than from the registry.
    raw = env_str(ENV_VAR)
    return Path(raw).expanduser().resolve() if raw else None


def multiprocess_mode_active() -> bool:
    """True when prometheus_client in this process writes values to mmap files.

    Before prometheus_client is imported this reports whether it *will* be active.
    """
    values = sys.modules.get("prometheus_client.values")
    if values is None:
        return configured_multiprocess_dir() is not None
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def remove_live_gauge_files(pid: int, directory: Path) -> list[Path]:
    """Delete the `live*` gauge files of one process (same effect as mark_process_dead)."""
    removed = []
    for name in glob.glob(str(directory / LIVE_GAUGE_FILE_GLOB.format(pid=pid))):
        try:
            os.remove(name)
        except FileNotFoundError:
            continue  # another process (the exporter's reaper) removed it first
        except OSError as exc:
            # A read-only directory: the stale file stays, which costs a wrong gauge, never
            # the process (metrics must not stop anything).
            log.debug("cannot remove %s: %s", name, exc.strerror or exc)
            continue
        removed.append(Path(name))
    return removed


def _remove_own_live_files_at_exit() -> None:
    # Runs after the other atexit hooks registered later (engines.dispose_all), so that pool
    # gauges updated while disposing do not recreate the entries.
    directory = configured_multiprocess_dir()
    if directory is not None and multiprocess_mode_active():
        remove_live_gauge_files(os.getpid(), directory)


def shared_multiprocess_dir() -> Path:
    """The directory the pipeline's processes write to: the exported one, else the one withheld
    by `keep_metrics_in_memory()`, else the default (for readers such as `metrics dump`)."""
    return configured_multiprocess_dir() or _withheld_dir or default_multiprocess_dir()


_withheld_dir: Path | None = None
#: False once the directory came from the data directory's default rather than the variable.
_explicit_dir = True


def keep_metrics_in_memory() -> bool:
    """Make this process keep its metric values in memory (no directory, no files).

    For commands that only read: their values would be a few gauges of a process about to exit.
    Only possible before prometheus_client is imported (its mode is chosen then); returns whether
    the process is now in single-process mode. The directory withheld stays known to
    `shared_multiprocess_dir()`.
    """
    global _withheld_dir
    if "prometheus_client.values" in sys.modules:
        return not multiprocess_mode_active()
    directory = configured_multiprocess_dir()
    if directory is not None:
        _withheld_dir = directory
        os.environ.pop(ENV_VAR, None)
    return True


def unwritable_reason(directory: Path) -> str | None:
    """Why metric files cannot be written under `directory` (creating it if missing); None: they
    can.

    `os.access` rather than a probe file: it reports a read-only mount (EROFS) and missing
    permissions without leaving anything in a directory the exporter globs.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    if not os.access(directory, os.W_OK | os.X_OK):
        return "not writable"
    return None


def metrics_switched_off() -> str | None:
    """Why this process keeps its values in memory after all (None: it writes files)."""
    return _switched_off


def _switch_off(directory: Path, reason: str) -> None:
    """Keep this process's values in memory and say once which directory and variable to fix."""
    global _withheld_dir, _switched_off
    _withheld_dir = directory
    os.environ.pop(ENV_VAR, None)
    values = sys.modules.get("prometheus_client.values")
    if values is not None and getattr(values.ValueClass, "_multiprocess", False):
        # Imported in multiprocess mode already (a script that imported prometheus_client
        # first): metric objects created from now on hold their values in memory.
        values.ValueClass = values.MutexValue
    if _switched_off is None:
        source = "" if _explicit_dir else f"; by default under {DATA_DIR_ENV_VAR}"
        log.warning(
            "warning: metrics off: cannot write to %s (%s%s): %s; this process keeps its "
            "metrics in memory",
            directory,
            ENV_VAR,
            source,
            reason,
        )
    _switched_off = reason


def prepare_values_directory() -> None:
    """Make sure the exported directory can take this process's values, else switch them off.

    Called by `resources.metrics` just before it imports prometheus_client (whose mode is fixed
    at that import) and creates its first metric object, which opens a file in the directory.
    """
    directory = configured_multiprocess_dir()
    if directory is None or not multiprocess_mode_active():
        return
    reason = unwritable_reason(directory)
    if reason is not None:
        _switch_off(directory, reason)


def ensure_multiprocess_dir(*, create: bool = True) -> Path:
    """Export PROMETHEUS_MULTIPROC_DIR (creating the directory if `create`), register the exit
    cleanup.

    Idempotent; call it before anything imports prometheus_client. An already exported directory
    (from the operator or a parent process) is kept, so that a run's steps write where the daemon
    and the exporter look. If prometheus_client was imported earlier without the variable, this
    process stays in single-process mode; a warning says so. `create=False` is for the import of
    `pipeline_defs`, which must not write anything (`create_directory_for_values` does it later).
    """
    global _bootstrapped_pid, _explicit_dir
    explicit = configured_multiprocess_dir() or _withheld_dir
    directory = explicit or default_multiprocess_dir()
    if _switched_off is not None:
        return directory  # this process already keeps its values in memory (warned once)
    if explicit is None:
        _explicit_dir = False
    if create:
        reason = unwritable_reason(directory)
        if reason is not None:
            _switch_off(directory, reason)
            return directory
    already_imported = "prometheus_client.values" in sys.modules
    os.environ[ENV_VAR] = str(directory)
    pid = os.getpid()
    if _bootstrapped_pid != pid:
        _bootstrapped_pid = pid
        if not already_imported:
            # No value of ours exists yet: live files with our pid belong to a dead process.
            remove_live_gauge_files(pid, directory)
        atexit.register(_remove_own_live_files_at_exit)
    if already_imported and not multiprocess_mode_active():
        log.warning(
            "prometheus_client was imported before %s was set; metrics of this process (pid %d) "
            "stay in memory and will not reach the exporter. Call "
            "resources.metrics_bootstrap.ensure_multiprocess_dir() before importing it.",
            ENV_VAR,
            pid,
        )
    return directory
