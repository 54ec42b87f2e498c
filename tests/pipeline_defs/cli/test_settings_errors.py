"""A bad setting stops every command with one line naming the variable, exit status 2.

Issue 17: malformed database URLs ended in tracebacks (or exit 0), `CONTIMG_DB_POOL_SIZE=-1` and
`CONTIMG_DB_POOL_TIMEOUT=abc` passed `db status`, and `sqlite://` or a URL into a missing
directory "worked". Every variable of docs/configuration.md is covered: the table is parsed, so
a new row needs a bad value here (or a reason why every value is acceptable).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline_defs.cli import main
from tests.pipeline_defs.cli.as_typed import contimg

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"

# {file}: an existing regular file; {dir}: an existing directory (both made per test).
BAD_VALUES: dict[str, str] = {
    "CONTIMG_DATA_DIR": "{file}",
    "CONTIMG_INCOMING_DIRS": "{dir}" + os.pathsep + "{file}",
    "CONTIMG_HDF5_DIRS": "{file}" + os.pathsep + "{dir}",
    "CONTIMG_MS_DIRS": "{dir}" + os.pathsep + "{file}",
    "CONTIMG_CALTABLE_DIRS": "{file}",
    "CONTIMG_INCOMING_PATTERNS": os.pathsep * 2,
    "CONTIMG_THUMBNAIL_DIR": "{file}",
    "CONTIMG_QA_REPORT_DIR": "{file}",
    "CONTIMG_PUBLISH_DIR": "{file}",
    "CONTIMG_FITS_CACHE_PATH": "{dir}",
    "CONTIMG_DB_PRODUCTS_URL": "postgresql+psycopg://u:hunter2@h:abc/x",
    "CONTIMG_DB_CAL_REGISTRY_URL": "foo://x",
    "CONTIMG_DB_HDF5_URL": "sqlite://",
    "CONTIMG_DB_INGEST_URL": "postgresql+pg8000://u@h/x",
    "CONTIMG_DB_DATA_REGISTRY_URL": "sqlite:///{file}/x.sqlite3",
    "CONTIMG_DB_POOL_SIZE": "-1",
    "CONTIMG_DB_MAX_OVERFLOW": "-1",
    "CONTIMG_DB_POOL_TIMEOUT": "abc",
    "CONTIMG_DB_POOL_RECYCLE": "-2",
    "CONTIMG_DB_POOL_PRE_PING": "maybe",
    "CONTIMG_DB_CONNECT_TIMEOUT": "0",
    "CONTIMG_DB_HEALTH_TIMEOUT": "nan",
    "CONTIMG_DB_BACKUP_KEEP": "0",
    "CONTIMG_PARTITIONS_START": "yesterday",
    "CONTIMG_OBS_DATE_FALLBACK": "ctime",
    "CONTIMG_INGEST_BATCH": "0",
    "CONTIMG_INGEST_STALE_MINUTES": "1.5",
    "CONTIMG_SENSOR_MAX_HEADER_READS": "0",
    "CONTIMG_SENSOR_TIME_BUDGET_S": "-1",
    "CONTIMG_SENSOR_MAX_RUNS_PER_TICK": "many",
    "CONTIMG_SCAN_MAX_HEADER_READS_PER_RUN": "0",
    "CONTIMG_SCAN_TIME_BUDGET_S": "inf",
    "CONTIMG_FITS_MAX_WORKERS": "0",
    "CONTIMG_FITS_CACHE_TTL_SECONDS": "-1",
    "CONTIMG_PIXEL_THREADS": "-1",
    "CONTIMG_PIXEL_POOL": "fork",
    "CONTIMG_QA_MAX_FAIL_FRACTION": "1.5",
    "CONTIMG_EXECUTOR": "threads",
    "CONTIMG_MAX_CONCURRENT_STEPS": "-1",
    "CONTIMG_MP_START_METHOD": "fork",
    "CONTIMG_CELERY_BROKER": "127.0.0.1:6379",
    "CONTIMG_CELERY_BACKEND": "redis-host",
    "CONTIMG_METRICS_DB_TIMEOUT": "0",
    "CONTIMG_METRICS_DAGSTER_TIMEOUT": "soon",
    "CONTIMG_METRICS_DAGSTER": "2",
    "CONTIMG_METRICS_REAP_DEAD_PIDS": "yes please",
    "CONTIMG_METRICS_CACHE_SECONDS": "-5",
    "CONTIMG_HEALTH_SENSOR_INTERVAL": "0",
    "CONTIMG_AUTO_MIGRATE": "sometimes",
}

#: Documented variables for which contimg has no wrong value, and why.
ANY_VALUE: dict[str, str] = {
    "DAGSTER_HOME": "Dagster's own variable; any path, created by `contimg init-home`",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's own variable; any path, created on use",
    "CONTIMG_DB_PASSWORD": "a password may be any string",
    "CONTIMG_CELERY_QUEUE": "a Celery queue may have any name",
    "DAGSTER_PG_USERNAME": "read by Dagster's storage (production profile), not by contimg",
    "DAGSTER_PG_PASSWORD": "read by Dagster's storage (production profile), not by contimg",
    "DAGSTER_PG_HOST": "read by Dagster's storage (production profile), not by contimg",
    "DAGSTER_PG_DB": "read by Dagster's storage (production profile), not by contimg",
    "DAGSTER_PG_PORT": "read by Dagster's storage (production profile), not by contimg",
}

_VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]+)`")


def documented_variables() -> list[str]:
    """Every variable named in the first cell of a table row of docs/configuration.md."""
    found: list[str] = []
    for line in DOCS.read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1]
            found += [v for v in _VARIABLE.findall(first) if v not in found]
    return found


def _value(template: str, tmp_path: Path) -> str:
    existing_file = tmp_path / "a-file"
    existing_file.write_text("not a directory\n")
    existing_dir = tmp_path / "a-dir"
    existing_dir.mkdir(exist_ok=True)
    return template.format(file=existing_file, dir=existing_dir)


def _masked_line(stderr: str, variable: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {variable}: "), stderr
    assert "hunter2" not in stderr and "Traceback" not in stderr
    return lines[0]


def test_every_documented_variable_has_a_bad_value_or_a_reason() -> None:
    documented = set(documented_variables())
    assert len(documented) > 40  # the parser found the tables
    assert not set(BAD_VALUES) & set(ANY_VALUE)
    assert documented == set(BAD_VALUES) | set(ANY_VALUE), (
        f"not covered: {sorted(documented - set(BAD_VALUES) - set(ANY_VALUE))}; "
        f"not documented: {sorted(set(BAD_VALUES) | set(ANY_VALUE) - documented)}"
    )


@pytest.mark.parametrize("variable", [v for v in documented_variables() if v not in ANY_VALUE])
def test_a_wrong_value_stops_db_status_naming_the_variable(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = _value(BAD_VALUES[variable], tmp_path)
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(main, ["db", "status"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # stopped before the table: nothing was read
    _masked_line(result.stderr, variable)
    data = Path(os.environ["CONTIMG_DATA_DIR"])
    assert not list(data.glob("*.sqlite3"))


# --- the real command line, in a subprocess ---------------------------------------------------

URL_CASES: dict[str, tuple[str, str]] = {
    "ipv6-bracket": ("postgresql+psycopg://u:hunter2@[::1/x", "unclosed '['"),
    "port": ("postgresql+psycopg://u:hunter2@h:abc/x", "the port is not a number"),
    "dialect": ("foo://u:hunter2@x", "unknown dialect 'foo'"),
    "driver": ("postgresql+pg8000://u:hunter2@h/x", "driver 'pg8000' is not installed"),
    "memory": ("sqlite://", "in-memory SQLite database"),
    "memory-named": ("sqlite:///:memory:", "in-memory SQLite database"),
    "missing-dir": ("sqlite:///{missing}/products.sqlite3", "does not exist"),
}

COMMANDS: list[tuple[str, ...]] = [
    ("db", "status"),
    ("db", "upgrade"),
    ("db", "downgrade", "--db", "products", "--to", "base", "--yes"),
    ("db", "check"),
    ("health",),
    ("images", "list"),
    ("queue",),
    ("stats",),
    ("metrics", "dump"),
]


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`contimg ARGS` as a user runs it: a fresh shell's environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    env = {**base, "PYTHONWARNINGS": "ignore", "DAGSTER_HOME": str(cwd / "dh"), **env}
    return contimg(args, env, cwd=cwd)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("case", URL_CASES, ids=str)
def test_malformed_url_is_one_line_exit_2_from_every_command(
    tmp_path: Path, case: str, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "not" / "there"
    url, says = URL_CASES[case]
    result = _run(tmp_path, {"CONTIMG_DB_PRODUCTS_URL": url.format(missing=missing)}, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _masked_line(result.stderr, "CONTIMG_DB_PRODUCTS_URL")
    assert says in line
    if "hunter2" in url:
        assert "u:***@" in line
    assert not (tmp_path / "not").exists()  # no directory tree made for the bad URL
    assert not list(tmp_path.rglob("*.sqlite3"))  # and no database touched before the check


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("CONTIMG_DB_POOL_SIZE", "-1", ("db", "status")),
        ("CONTIMG_DB_POOL_SIZE", "-1", ("health",)),
        ("CONTIMG_DB_POOL_TIMEOUT", "abc", ("db", "status")),
        ("CONTIMG_DB_POOL_TIMEOUT", "abc", ("metrics", "dump")),
        ("CONTIMG_PARTITIONS_START", "yesterday", ("db", "upgrade")),
        ("CONTIMG_PARTITIONS_START", "yesterday", ("queue",)),
    ],
)
def test_other_settings_exit_2_from_the_real_command(
    tmp_path: Path, variable: str, value: str, command: tuple[str, ...]
) -> None:
    result = _run(tmp_path, {variable: value}, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    line = _masked_line(result.stderr, variable)
    assert repr(value) in line
    assert result.stdout == ""


def test_upgrade_creates_the_data_dir_and_nothing_else(tmp_path: Path) -> None:
    data = tmp_path / "site" / "var"  # the configured data dir, parents and all
    result = _run(tmp_path, {"CONTIMG_DATA_DIR": str(data)}, "db", "upgrade", "--no-backup")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in data.glob("*.sqlite3")) == sorted(
        f"{n}.sqlite3" for n in ("products", "cal_registry", "hdf5", "ingest", "data_registry")
    )

    below = data / "sub" / "products.sqlite3"  # not the data dir itself: refused, not made
    refused = _run(
        tmp_path,
        {"CONTIMG_DATA_DIR": str(data), "CONTIMG_DB_PRODUCTS_URL": f"sqlite:///{below}"},
        "db",
        "upgrade",
    )
    assert refused.returncode == 2
    line = _masked_line(refused.stderr, "CONTIMG_DB_PRODUCTS_URL")
    assert f"the directory {below.parent} of sqlite:///{below} does not exist" in line
    assert not below.parent.exists()


def test_partitions_start_fails_the_code_location_load_naming_the_variable(
    tmp_path: Path,
) -> None:
    """`dg check defs`, as the README has users run it, from the project directory."""
    project = Path(__file__).resolve().parents[3]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=project,
        env={
            **base,
            "CONTIMG_DATA_DIR": str(tmp_path / "var"),
            "DAGSTER_HOME": str(tmp_path),
            "CONTIMG_PARTITIONS_START": "yesterday",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    headline = [line for line in output.splitlines() if "CONTIMG_PARTITIONS_START: " in line]
    expected = (
        "resources.errors.ConfigurationError: CONTIMG_PARTITIONS_START: expected a date as "
        "YYYY-MM-DD, got 'yesterday'"
    )
    assert headline == [expected], output
