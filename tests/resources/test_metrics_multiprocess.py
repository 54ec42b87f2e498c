"""Multiprocess aggregation across real child processes, and cleanup of dead processes' gauges."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline_defs.monitoring.exporter import ExporterSettings, build_exporter, reap_dead_processes
from resources.metrics_bootstrap import ENV_VAR
from tests.resources.metrics_support import child_count_and_hold, value


def _render(directory: Path, *, reap: bool = True) -> str:
    settings = ExporterSettings(
        multiprocess_dir=directory, include_dagster=False, reap_dead_pids=reap, databases=()
    )
    return build_exporter(settings).render().decode()


@pytest.fixture
def prom_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    monkeypatch.setenv(ENV_VAR, str(directory))  # inherited by the spawned children
    return directory


def _start(ctx, label: str, amount: int):  # type: ignore[no-untyped-def]
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=child_count_and_hold, args=(label, amount, child_end))
    proc.start()
    child_end.close()
    if not parent_end.poll(60):
        proc.kill()
        raise AssertionError(f"child {label} did not report ready")
    assert parent_end.recv() == proc.pid
    return proc, parent_end


def _release(proc, conn) -> None:  # type: ignore[no-untyped-def]
    try:
        conn.send("exit")
    except (BrokenPipeError, OSError):
        pass  # already dead
    conn.close()
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        proc.join(10)


def test_two_processes_sum_and_dead_process_live_gauges_disappear(prom_dir: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    first, release_first = _start(ctx, "products", 2)
    second, release_second = _start(ctx, "products", 3)
    try:
        text = _render(prom_dir)
        counter = "contimg_images_processed_total"
        assert value(text, counter, asset="fits_metadata", outcome="ok") == 5.0
        assert value(text, "contimg_db_pool_checked_out", database="products") == 5.0
        assert value(text, "contimg_db_pool_size", database="products") == 10.0
        assert "pid" not in text  # livesum drops the per-process label

        # These children do not run the bootstrap (whose atexit hook is tested below), so the
        # test marks the exited child dead the way a supervising process would.
        _release(first, release_first)
        assert first.exitcode == 0
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(first.pid, str(prom_dir))
        text = _render(prom_dir, reap=False)
        assert value(text, counter, asset="fits_metadata", outcome="ok") == 5.0  # kept
        assert value(text, "contimg_db_pool_checked_out", database="products") == 3.0
        assert value(text, "contimg_db_pool_size", database="products") == 5.0

        # SIGKILL: nobody marks it dead; the exporter's reaper notices the pid is gone.
        second.kill()
        second.join(30)
        assert list(prom_dir.glob(f"gauge_livesum_{second.pid}.db"))
        text = _render(prom_dir, reap=True)
        assert not list(prom_dir.glob(f"gauge_livesum_{second.pid}.db"))
        assert value(text, "contimg_db_pool_checked_out", database="products") is None
        assert value(text, counter, asset="fits_metadata", outcome="ok") == 5.0
    finally:
        for proc, conn in ((first, release_first), (second, release_second)):
            if not conn.closed:
                _release(proc, conn)


def test_reaper_keeps_live_processes(prom_dir: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    proc, release = _start(ctx, "ingest", 1)
    try:
        assert reap_dead_processes(prom_dir) == []
        assert value(_render(prom_dir), "contimg_db_pool_checked_out", database="ingest") == 1.0
    finally:
        _release(proc, release)


BOOTSTRAP_CHILD = textwrap.dedent(
    """
    import os, sys
    import pipeline_defs  # the bootstrap runs first
    from prometheus_client import values
    from resources import metrics
    assert values.ValueClass._multiprocess, "multiprocess mode is off"
    metrics.DB_POOL_CHECKED_OUT.labels(database="products").set(1)
    metrics.FITS_CACHE_HITS.inc()
    print(os.environ["PROMETHEUS_MULTIPROC_DIR"], os.getpid())
    sys.exit(int(sys.argv[1]))
    """
)


def _python(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_bootstrap_defaults_to_data_dir_and_cleans_up_at_exit(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    stale = data_dir / "prometheus"
    result = _python(BOOTSTRAP_CHILD, env, "0")
    assert result.returncode == 0, result.stderr
    directory, pid = result.stdout.split()
    assert Path(directory) == stale
    # A normal exit removed the live gauge file but kept the counter's file.
    assert not list(stale.glob(f"gauge_live*_{pid}.db"))
    assert list(stale.glob(f"counter_{pid}.db"))
    text = _render(stale, reap=False)
    assert value(text, "contimg_fits_cache_hits_total") == 1.0
    assert value(text, "contimg_db_pool_checked_out", database="products") is None


def test_bootstrap_removes_stale_live_files_of_a_reused_pid(data_dir: Path, tmp_path: Path) -> None:
    """A process whose pid was used by a dead process must not inherit its live gauge values."""
    directory = data_dir / "prometheus"
    template = tmp_path / "dead-process-live-gauges.db"
    writer = textwrap.dedent(
        """
        import os, sys
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
        from resources import metrics
        metrics.DB_POOL_CHECKED_OUT.labels(database="products").set(7)
        os.rename(os.path.join(sys.argv[1], f"gauge_livesum_{os.getpid()}.db"), sys.argv[2])
        """
    )
    directory.mkdir()
    made = _python(writer, dict(os.environ), str(directory), str(template))
    assert made.returncode == 0, made.stderr
    # The next process finds that file under its own pid, as if its pid had been reused.
    reader = textwrap.dedent(
        """
        import os, shutil, sys
        own = os.path.join(sys.argv[1], f"gauge_livesum_{os.getpid()}.db")
        shutil.copy(sys.argv[2], own)
        import pipeline_defs
        from resources import metrics
        metrics.DB_POOL_CHECKED_OUT.labels(database="products").inc(1)
        from pipeline_defs.monitoring.exporter import ExporterSettings, build_exporter
        s = ExporterSettings(multiprocess_dir=None, include_dagster=False, databases=())
        sys.stdout.write(build_exporter(s).render().decode())
        """
    )
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    result = _python(reader, env, str(directory), str(template))
    assert result.returncode == 0, result.stderr
    # 1, not 8: the stale value was removed before the first metric was created.
    assert value(result.stdout, "contimg_db_pool_checked_out", database="products") == 1.0
