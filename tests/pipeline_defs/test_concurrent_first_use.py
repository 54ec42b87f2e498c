"""Several processes at once: the first commands on a fresh DAGSTER_HOME, and two runs of one
partition (issue 17, faults 2 and 3).

The processes are real (multiprocessing, spawn) and released together by a Barrier, so they
reach Dagster's storage creation and the partition's writes at the same moment; no sleeps.
Dagster's SQLite storages stamp `alembic_version` unguarded on first open, so without
`contimg init-home` first, such processes die in instance creation (pipeline_defs/instance.py).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from pipeline_defs.cli import main
from resources.database import Databases
from resources.repositories.data_registry import REGISTRY
from resources.settings import DATABASE_NAMES
from tests.fixtures_pipeline import (
    SAMPLE_START,
    count_rows,
    migrated_single_url,
    migrated_sqlite,
    queue_rows,
    write_samples,
)

DAY1 = SAMPLE_START
WAIT_S = 300


def _child(barrier: Any, out: Any, task: str) -> None:
    """One process: wait for the others, then do `task`; report (task, ok, captured output)."""
    buf = io.StringIO()
    ok = False
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            if task == "init-home":
                barrier.wait(WAIT_S)
                result = CliRunner().invoke(main, ["init-home"])
                buf.write(result.output)
                ok = result.exit_code == 0
            elif task == "open":
                import dagster as dg

                barrier.wait(WAIT_S)
                with dg.DagsterInstance.get() as instance:
                    ok = instance.get_runs() == []
            else:
                import dagster as dg

                from pipeline_defs.definitions import build_definitions

                job = build_definitions().resolve_job_def("daily_products_job")
                barrier.wait(WAIT_S)
                with dg.DagsterInstance.get() as instance:
                    result = job.execute_in_process(
                        partition_key=task, instance=instance, raise_on_error=False
                    )
                for event in result.all_events:
                    if event.is_failure:
                        buf.write(f"{event.event_type_value}: {event.message}\n")
                        data = event.event_specific_data
                        if data is not None and getattr(data, "error", None) is not None:
                            buf.write(data.error.to_string())
                ok = result.success
        finally:
            out.put((task, ok, buf.getvalue()))


def run_together(*tasks: str) -> list[tuple[str, bool, str]]:
    """Start one spawned process per task, release them together, collect their reports."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(tasks))
    out = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(barrier, out, task)) for task in tasks]
    for proc in procs:
        proc.start()
    reports = [out.get(timeout=WAIT_S) for _ in procs]
    for proc in procs:
        proc.join(WAIT_S)
        assert proc.exitcode == 0
    return reports


def test_two_init_homes_then_three_first_opens_of_a_fresh_home(data_dir: Path) -> None:
    home = data_dir / "dagster_home"
    shutil.rmtree(home)  # truly fresh: not even the directory
    reports = run_together("init-home", "init-home")
    assert [ok for _, ok, _ in reports] == [True, True], reports
    assert sorted(p.name for p in home.iterdir()) == sorted(
        [".contimg-storage.lock", "dagster.yaml", "history", "schedules"]
    )
    reports = run_together("open", "open", "open")
    assert all(ok for _, ok, _ in reports), reports
    assert not any("alembic_version" in text or "Error" in text for _, _, text in reports)


def check_one_row_per_image(dbs: Databases, n_images: int, n_files: int) -> None:
    assert count_rows(dbs, "products", "images") == n_images
    assert count_rows(dbs, "products", "image_qa") == n_images
    assert count_rows(dbs, "products", "thumbnails") == n_images
    assert count_rows(dbs, "ingest", "ingest_queue") == n_files
    with dbs.connect("data_registry") as conn:
        total, distinct = conn.execute(
            select(func.count(), func.count(REGISTRY.c.product_id.distinct()))
        ).one()
        types = dict(
            conn.execute(
                select(REGISTRY.c.product_type, func.count()).group_by(REGISTRY.c.product_type)
            ).all()
        )
    assert total == distinct
    assert types == {"image": n_images, "thumbnail": n_images, "qa": n_images}
    states = [r.state for r in queue_rows(dbs).values() if r.obs_date == DAY1]
    assert states == ["completed"] * n_images


def two_runs_of_one_day(dbs: Databases, data_dir: Path) -> None:
    files = write_samples(data_dir / "incoming", broken=False)
    init = CliRunner().invoke(main, ["init-home"])
    assert init.exit_code == 0, init.output
    reports = run_together(DAY1.isoformat(), DAY1.isoformat())
    for _, ok, text in reports:
        assert ok, text
        assert "IntegrityError" not in text and "UNIQUE constraint" not in text, text
        assert "alembic_version" not in text, text
    n_images = sum(1 for f in files if f.obs_date == DAY1)
    check_one_row_per_image(dbs, n_images=n_images, n_files=len(files))


def test_two_runs_of_one_partition_at_once_sqlite(data_dir: Path) -> None:
    two_runs_of_one_day(migrated_sqlite(data_dir), data_dir)


@pytest.mark.postgres
def test_two_runs_of_one_partition_at_once_postgres(
    pg_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in DATABASE_NAMES:
        monkeypatch.setenv(f"CONTIMG_DB_{name.upper()}_URL", pg_url)
    two_runs_of_one_day(migrated_single_url(pg_url), data_dir)


# --- an unwritable DAGSTER_HOME ------------------------------------------------------------------


def _read_only(home: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` with `home` bind-mounted read-only in a private mount namespace.

    Real EROFS, which stops root too (a chmod would not: these tests may run as root).
    """
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(home), *command],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )


def _can_make_read_only_mounts(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = _read_only(tmp_path, "true")
    return probe.returncode == 0


def test_read_only_dagster_home_is_one_line_and_nonzero(data_dir: Path, tmp_path: Path) -> None:
    if not _can_make_read_only_mounts(tmp_path):
        pytest.skip("needs `unshare -m` and bind mounts (a private mount namespace)")
    home = data_dir / "dagster_home"
    contimg = str(Path(sys.executable).parent / "contimg")
    init = _read_only(home, contimg, "init-home")
    assert init.returncode == 1
    lines = [line for line in init.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, init.stderr
    assert f"DAGSTER_HOME {home} is not writable (Read-only file system)" in lines[0]
    assert "Traceback" not in init.stderr + init.stdout
    assert not (home / "dagster.yaml").exists()

    migrated_sqlite(data_dir)  # every database fine: only DAGSTER_HOME is wrong
    health = _read_only(home, contimg, "health")
    assert health.returncode == 1, health.stdout + health.stderr
    assert f"DAGSTER_HOME {home} is not writable (Read-only file system)" in health.stdout
    assert CliRunner().invoke(main, ["health"]).exit_code == 0  # writable again outside
