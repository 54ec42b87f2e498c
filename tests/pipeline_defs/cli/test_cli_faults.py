"""What an operator sees when the disk or the database misbehaves (issue 17), commands run as
subprocesses exactly as typed:

- a read-only data directory (a real read-only tmpfs mount): `--help`, `images list`, `health`
  and `db upgrade` still run; a command that records metrics prints ONE warning naming the
  directory and PROMETHEUS_MULTIPROC_DIR, never a traceback;
- a damaged SQLite file (first 4 KB overwritten) and a migrated one truncated to 0 bytes: one
  `error:` line naming the file, exit 1, for `images list`, `health`, `db status`; `db upgrade`
  refuses the truncated one until `--recreate`, after which the catalogue works again;
- a backend terminated mid-query on PostgreSQL: `images list` says the connection was lost
  mid-query (not "cannot connect"), and the next run answers.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from migrations import runner
from resources.settings import DATABASE_NAMES, database_url
from tests.mounts import tmpfs
from tests.pipeline_defs.cli.as_typed import CONTIMG, REPO, contimg, error_lines
from tests.resources.metrics_support import wait_for
from tests.services import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTIMG_DB_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the default: <data dir>/prometheus
    env.update({"CONTIMG_DATA_DIR": str(data), "PYTHONWARNINGS": "ignore", **extra})
    return env


# --- a read-only data directory ------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only file system (root ignores permission bits, not `ro`)."""
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mountpoint:
        yield mountpoint


def test_read_only_data_directory_never_stops_a_command(read_only_dir: Path) -> None:
    env = _env(read_only_dir)
    helped = contimg(["--help"], env)
    assert helped.returncode == 0 and "Commands:" in helped.stdout
    assert helped.stderr == ""
    for args in (["images", "list"], ["health"]):
        result = contimg(args, env)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 1  # nothing migrated there: a plain failure, one line each
        assert "Read-only file system" not in result.stderr
    # A command that records metrics: they are switched off with one line, the command runs on.
    upgraded = contimg(["db", "upgrade", "--db", "products"], env)
    assert "Traceback" not in upgraded.stderr, upgraded.stderr
    warnings = [line for line in upgraded.stderr.splitlines() if "metrics off" in line]
    assert warnings == [
        (
            f"warning: metrics off: cannot write to {read_only_dir / 'prometheus'} "
            "(PROMETHEUS_MULTIPROC_DIR; by default under CONTIMG_DATA_DIR): Read-only file "
            "system; this process keeps its metrics in memory"
        )
    ]
    assert len(error_lines(upgraded)) == 1 and "products" in error_lines(upgraded)[0]
    # That one line names the directory that cannot be written and the variables to change,
    # not "check that the server is up" (SQLite has no server).
    (line,) = error_lines(upgraded)
    assert f"the SQLite file {read_only_dir / 'products.sqlite3'} cannot be written" in line
    assert f"{read_only_dir} is not writable (Read-only file system)" in line
    assert "CONTIMG_DB_PRODUCTS_URL" in line and "CONTIMG_DATA_DIR" in line
    assert "server is up" not in line
    assert list(read_only_dir.iterdir()) == []  # nothing half-written
    samples = contimg(["sample-data", "--days", "1"], env)
    assert samples.returncode == 1 and "Traceback" not in samples.stderr
    expected = (
        f"error: cannot write to {read_only_dir / 'incoming'} (under CONTIMG_DATA_DIR): "
        "Read-only file system"
    )
    assert error_lines(samples) == [expected]


def test_read_only_metrics_directory_under_a_writable_data_dir(
    read_only_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = _env(data, PROMETHEUS_MULTIPROC_DIR=str(read_only_dir / "prom"))
    upgraded = contimg(["db", "upgrade"], env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Traceback" not in upgraded.stderr
    assert [line for line in upgraded.stderr.splitlines() if "metrics off" in line] == [
        (
            f"warning: metrics off: cannot write to {read_only_dir / 'prom'} "
            "(PROMETHEUS_MULTIPROC_DIR): Read-only file system; this process keeps its metrics "
            "in memory"
        )
    ]
    # The migration itself happened: the databases are at head.
    status = contimg(["db", "status"], env)
    assert status.returncode == 0, status.stderr
    assert " no " not in status.stdout


# --- damaged SQLite files ----------------------------------------------------------------------


def _migrate_all(data: Path) -> None:
    for name in DATABASE_NAMES:
        runner.upgrade(name, database_url(name), backup=False)


def test_overwritten_header_is_one_line_naming_the_file(data_dir: Path) -> None:
    _migrate_all(data_dir)
    # A second migration step writes the backup the message must point to.
    url = database_url("products")
    runner.downgrade("products", url, "-1", backup=False)
    backup = runner.upgrade("products", url).backup_path
    assert backup is not None
    path = data_dir / "products.sqlite3"
    with open(path, "r+b") as handle:
        handle.write(os.urandom(4096))
    env = _env(data_dir)
    for args in (["images", "list"], ["health"], ["db", "status"]):
        result = contimg(args, env)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        text = result.stdout + result.stderr
        damaged = [line for line in text.splitlines() if "is damaged" in line]
        assert len(damaged) == 1, (args, text)
        assert (
            f"the SQLite file {path} is damaged: DatabaseError: file is not a database"
            in (damaged[0])
        )
        assert f"contimg db restore --db products --from {backup} --yes" in damaged[0]
        assert "Check that the server is up" not in text
    assert "DAMAGED" in contimg(["health"], env).stdout

    # The restore the message names works on the damaged file (the backup is one revision
    # behind: upgrade it again), and the catalogue answers.
    restored = contimg(["db", "restore", "--db", "products", "--from", backup, "--yes"], env)
    assert restored.returncode == 0, restored.stderr
    assert contimg(["db", "upgrade", "--db", "products"], env).returncode == 0
    listed = contimg(["images", "list"], env)
    assert listed.returncode == 0, listed.stderr


def test_truncated_file_is_refused_until_recreate(data_dir: Path) -> None:
    _migrate_all(data_dir)
    path = data_dir / "ingest.sqlite3"
    path.write_bytes(b"")
    env = _env(data_dir)
    for args in (["queue"], ["health"], ["db", "status"]):
        result = contimg(args, env)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        text = result.stdout + result.stderr
        assert "Traceback" not in text
        damaged = [line for line in text.splitlines() if "is damaged" in line]
        assert len(damaged) == 1, (args, text)
        assert f"the SQLite file {path} is damaged: it was migrated before" in damaged[0]
    health = contimg(["health"], env).stdout
    assert next(line for line in health.splitlines() if line.startswith("ingest")).split()[1] == (
        "DAMAGED"
    )

    refused = contimg(["db", "upgrade", "--db", "ingest"], env)
    assert refused.returncode == 1
    assert len(error_lines(refused)) == 1 and "--recreate" in error_lines(refused)[0]
    with sqlite3.connect(path) as conn:  # no catalogue was created behind the operator's back
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)

    recreated = contimg(["db", "upgrade", "--db", "ingest", "--recreate"], env)
    assert recreated.returncode == 0, recreated.stderr
    assert "ingest: upgraded base -> " in recreated.stdout
    assert "backup" not in recreated.stdout  # an empty file is not worth a backup slot
    queue = contimg(["queue"], env)
    assert queue.returncode == 0, queue.stderr
    assert contimg(["health"], env).returncode == 0


# --- PostgreSQL: a backend terminated while a command waits ------------------------------------


def _admin(database: str = PG_ADMIN_DB) -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database)


@pytest.mark.postgres
def test_lost_connection_mid_query_is_not_cannot_connect(pg_database: str, pg_url: str) -> None:
    for name in DATABASE_NAMES:
        runner.upgrade(name, pg_url, backup=False)
    env = _env(Path("/nonexistent-unused"), CONTIMG_DB_PRODUCTS_URL=pg_url)
    env.update({f"CONTIMG_DB_{name.upper()}_URL": pg_url for name in DATABASE_NAMES})
    # Hold a lock on images so the command's query waits inside the server, then end that
    # backend as a restart would.
    with _admin(pg_database) as locker:
        locker.execute("LOCK TABLE images IN ACCESS EXCLUSIVE MODE")
        proc = subprocess.Popen(
            [CONTIMG, "images", "list"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:

            def waiting() -> list[int] | None:
                with _admin() as admin:
                    rows = admin.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                        "wait_event_type = 'Lock' AND pid <> %s",
                        (pg_database, locker.info.backend_pid),
                    ).fetchall()
                return [int(r[0]) for r in rows] or None

            pids = wait_for("images list to wait on the lock", waiting, timeout=60)
            with _admin() as admin:
                for pid in pids:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        locker.rollback()
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "lost the connection to postgresql+psycopg://" in errors[0]
    assert "re-run, the work is idempotent" in errors[0]
    assert "cannot connect" not in errors[0]
    again = contimg(["images", "list"], env)  # the server is fine: the next run answers
    assert again.returncode == 0, again.stderr
