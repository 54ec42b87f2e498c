"""`contimg metrics dump` and `contimg metrics serve` as the operator runs them (subprocesses)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.pipeline_defs.cli.as_typed import CONTIMG, REPO, contimg
from tests.resources.metrics_support import free_port, value, wait_for
from tests.services import services_required


def cli_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)  # CONTIMG_DATA_DIR and DAGSTER_HOME of this test (conftest)
    # The default (<data dir>/prometheus), stated explicitly: this pytest process may have
    # exported another directory when it imported pipeline_defs.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(data_dir / "prometheus")
    env["PYTHONWARNINGS"] = "ignore"
    return env


def test_dump_prints_an_exposition_promtool_accepts(data_dir: Path) -> None:
    result = contimg(["metrics", "dump"], cli_env(data_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    # Fresh data dir: the databases do not exist yet (and the dump must not create them).
    assert value(text, "contimg_db_up", database="products") == 0.0
    assert not (data_dir / "products.sqlite3").exists()
    assert value(text, "contimg_dagster_instance_up") == 1.0
    assert not (data_dir / "prometheus").exists()  # read-only: the dump writes no metric file
    promtool = shutil.which("promtool")
    if promtool is None:
        reason = "promtool not found (Debian package prometheus; .ci/run installs it)"
        if services_required():
            pytest.fail(f"{reason} and CONTIMG_REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(reason)
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_dump_without_dagster_home_skips_the_dagster_part_in_one_line(data_dir: Path) -> None:
    env = cli_env(data_dir)
    del env["DAGSTER_HOME"]
    result = contimg(["metrics", "dump"], env)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = (
        "warning: Dagster gauges skipped: DAGSTER_HOME is not set (set it to the instance's "
        "directory, or CONTIMG_METRICS_DAGSTER=0)"
    )
    assert result.stderr.splitlines() == [expected]
    assert value(result.stdout, "contimg_db_up", database="ingest") == 0.0
    assert "contimg_dagster_instance_up" not in result.stdout
    quiet = subprocess.run(
        [CONTIMG, "metrics", "dump"],
        env={**env, "CONTIMG_METRICS_DAGSTER": "0"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert quiet.returncode == 0 and quiet.stderr == ""


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    with metrics_server(data_dir) as server:
        yield server


@contextmanager
def metrics_server(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`contimg metrics serve` on a free loopback port, as a user starts it; killed after."""
    port = free_port()
    proc = subprocess.Popen(
        [CONTIMG, "metrics", "serve", "--port", str(port)],
        env=cli_env(data_dir),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _serving(proc: subprocess.Popen[str], port: int) -> str | None:
    if proc.poll() is not None:
        raise AssertionError(f"serve exited with {proc.returncode}: {proc.stderr.read()}")
    try:
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return None  # not listening yet
    return body if status == 200 else None


def test_serve_answers_on_loopback_and_stops_on_sigterm(
    served: tuple[subprocess.Popen[str], int],
) -> None:
    proc, port = served
    body = wait_for("/metrics to answer", lambda: _serving(proc, port), timeout=120)
    assert "contimg_db_up" in body
    assert _get(f"http://127.0.0.1:{port}/nothing-here")[0] == 404
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "stopped" in proc.stderr.read()


def test_serve_refuses_a_port_in_use(data_dir: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [CONTIMG, "metrics", "serve", "--port", str(port)],
            env=cli_env(data_dir),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
