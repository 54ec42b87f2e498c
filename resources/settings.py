"""Settings read from the environment at run time (never at import), with documented defaults.

| variable | default |
|---|---|
| CONTIMG_DATA_DIR | ./var under the working directory |
| CONTIMG_DB_<NAME>_URL | sqlite:///<data dir>/<name>.sqlite3 |
| CONTIMG_DB_PASSWORD | unset; if set, used as the password of URLs that name a user but none |
| CONTIMG_DB_POOL_SIZE / _MAX_OVERFLOW / _POOL_TIMEOUT / _POOL_RECYCLE / _POOL_PRE_PING | 5 / 10 / 30 / 1800 / 1 |
| CONTIMG_DB_CONNECT_TIMEOUT | 10 (seconds) |
| CONTIMG_DB_HEALTH_TIMEOUT | 5 (seconds) |
| CONTIMG_INCOMING_DIRS | <data dir>/incoming (os.pathsep-separated) |
| CONTIMG_THUMBNAIL_DIR | <data dir>/thumbnails |
| DAGSTER_HOME | <data dir>/dagster_home (set by the `contimg` wrapper and the Makefile) |

docs/configuration.md repeats this table for operators.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from resources.errors import ConfigurationError

DATABASE_NAMES: tuple[str, ...] = ("products", "cal_registry", "hdf5", "ingest", "data_registry")


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(name, f"expected an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(name, f"expected a number, got {raw!r}") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(name, f"expected a boolean (1/0, true/false), got {raw!r}")


def data_dir() -> Path:
    return Path(env_str("CONTIMG_DATA_DIR", "var") or "var").expanduser().resolve()


def check_database_name(name: str) -> str:
    if name not in DATABASE_NAMES:
        raise ConfigurationError(
            "database", f"unknown database {name!r}; known: {', '.join(DATABASE_NAMES)}"
        )
    return name


def database_url_env_var(name: str) -> str:
    return f"CONTIMG_DB_{check_database_name(name).upper()}_URL"


def default_database_url(name: str, base: Path | None = None) -> str:
    return f"sqlite:///{(base or data_dir()) / f'{name}.sqlite3'}"


def database_url(name: str) -> str:
    """URL of one logical database: its env var, else a SQLite file under the data dir."""
    url = env_str(database_url_env_var(name))
    if url is None:
        return default_database_url(name)
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            database_url_env_var(name),
            "name the driver explicitly: use postgresql+psycopg:// (a bare postgresql:// means "
            "a different driver depending on the SQLAlchemy version)",
        )
    return url


@dataclass(frozen=True)
class PoolSettings:
    pool_size: int = 5
    max_overflow: int = 10
    pool_timeout: float = 30.0
    pool_recycle: int = 1800
    pool_pre_ping: bool = True
    connect_timeout: float = 10.0
    health_timeout: float = 5.0

    @classmethod
    def from_env(cls) -> PoolSettings:
        return cls(
            pool_size=env_int("CONTIMG_DB_POOL_SIZE", cls.pool_size),
            max_overflow=env_int("CONTIMG_DB_MAX_OVERFLOW", cls.max_overflow),
            pool_timeout=env_float("CONTIMG_DB_POOL_TIMEOUT", cls.pool_timeout),
            pool_recycle=env_int("CONTIMG_DB_POOL_RECYCLE", cls.pool_recycle),
            pool_pre_ping=env_bool("CONTIMG_DB_POOL_PRE_PING", cls.pool_pre_ping),
            connect_timeout=env_float("CONTIMG_DB_CONNECT_TIMEOUT", cls.connect_timeout),
            health_timeout=env_float("CONTIMG_DB_HEALTH_TIMEOUT", cls.health_timeout),
        )


def incoming_dirs() -> list[Path]:
    raw = env_str("CONTIMG_INCOMING_DIRS")
    if raw is None:
        return [data_dir() / "incoming"]
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def thumbnail_dir() -> Path:
    raw = env_str("CONTIMG_THUMBNAIL_DIR")
    return Path(raw).expanduser().resolve() if raw else data_dir() / "thumbnails"


def dagster_home() -> Path:
    raw = env_str("DAGSTER_HOME")
    return Path(raw).expanduser().resolve() if raw else data_dir() / "dagster_home"
