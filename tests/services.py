"""Access to the real services the tests may use (PostgreSQL, Redis).

On a laptop without them, tests that need them are skipped and the reason is printed (pytest -ra).
Under CONTIMG_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the test instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_HOST = os.environ.get("CONTIMG_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CONTIMG_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CONTIMG_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("CONTIMG_TEST_PG_DB", "test")
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


def services_required() -> bool:
    return os.environ.get("CONTIMG_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(f"{reason} and CONTIMG_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{reason} (start it to run this test)")


def pg_admin_url(driver: str = "psycopg", database: str = PG_ADMIN_DB) -> str:
    return f"postgresql+{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB, autocommit=True
    )


@contextmanager
def temporary_pg_database(prefix: str = "contimg_t") -> Iterator[str]:
    """Create a fresh PostgreSQL database, yield its name, drop it (forcibly) afterwards."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_execute_admin(sql: str) -> None:
    """Run one statement on the admin database (roles, pg_terminate_backend, ...)."""
    with _admin_connect() as conn:
        conn.execute(sql)
