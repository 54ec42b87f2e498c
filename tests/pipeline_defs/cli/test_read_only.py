"""Read-only commands, run as a user types them in an empty directory with no CONTIMG_* settings:
they leave the directory empty (no ./var, no SQLite file, no metrics directory), say what is
missing in one line, and `health` exits non-zero when nothing is migrated."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.pipeline_defs.cli.as_typed import contimg

READ_ONLY: list[tuple[str, ...]] = [
    ("--help",),
    ("--version",),
    ("images", "--help"),
    ("db", "status"),
    ("db", "check"),
    ("db", "history", "--db", "ingest"),
    ("health",),
    ("health", "--json"),
    ("images", "list"),
    ("images", "show", "1"),
    ("queue",),
    ("queue", "--failed"),
    ("stats",),
    ("cal", "applylist", "--mjd", "60950"),
    ("metrics", "dump"),
    ("fits", "inspect", "nothing.fits"),
]


def _bare_env() -> dict[str, str]:
    """The environment of a fresh shell: no contimg, Dagster or prometheus_client settings."""
    drop = ("CONTIMG_", "DAGSTER_", "PROMETHEUS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return contimg(args, _bare_env(), cwd=cwd, timeout=180)


def _everything_under(directory: Path) -> list[str]:
    return sorted(
        str(Path(root, name).relative_to(directory))
        for root, dirs, files in os.walk(directory)
        for name in [*dirs, *files]
    )


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_command_writes_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    cwd = tmp_path / "empty"
    cwd.mkdir()
    result = _run(cwd, *args)
    assert _everything_under(cwd) == [], result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_health_outside_the_project_exits_non_zero(tmp_path: Path) -> None:
    result = _run(tmp_path, "health")
    assert result.returncode == 1, result.stdout
    assert "MISSING" in result.stdout
    assert "products.sqlite3 does not exist. Run `contimg db upgrade`" in result.stdout


def test_catalogue_command_on_unmigrated_database_is_one_error_line(tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    missing = _run(cwd, "images", "list")
    assert missing.returncode == 1
    [line] = missing.stderr.splitlines()
    assert line.startswith("error: database 'products': not migrated: the SQLite file ")
    assert "contimg db upgrade" in line

    (cwd / "var").mkdir()
    sqlite3.connect(cwd / "var" / "products.sqlite3").close()  # a file with no schema
    empty = _run(cwd, "images", "list")
    assert empty.returncode == 1
    [line] = empty.stderr.splitlines()
    assert line.startswith("error: database 'products': not migrated: sqlite:///")
    assert "has no schema yet" in line and "contimg db upgrade" in line
    assert "no such table" not in empty.stderr


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = _run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout == f"contimg {version('contimg')}\n"
