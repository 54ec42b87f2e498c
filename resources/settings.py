"""Every CONTIMG_* setting, declared once, read from the environment at run time (never at import).

`SETTINGS` is the registry: one `Setting` per variable with its type, default, meaning and
validation, so a default lives in exactly one place and a malformed value fails with a
`ConfigurationError` naming the variable (never echoing a secret). docs/configuration.md is the
operator's reference; tests/resources/test_settings.py keeps it and this registry in step.

Modules read their variables through the accessors here (`get`, `env_int`, ...) rather than
`os.environ`, so parsing and validation are the same everywhere.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resources.errors import ConfigurationError
from resources.secrets import mask_text, mask_url

# The first day of the sample data (`contimg sample-data`, `contimg demo`) and, by default, of the
# daily partitions: the demo's days are the first partitions instead of sitting behind months of
# empty ones. A site sets CONTIMG_PARTITIONS_START to its first observation day.
SAMPLE_FIRST_DAY = dt.date(2025, 10, 1)

DATABASE_NAMES: tuple[str, ...] = ("products", "cal_registry", "hdf5", "ingest", "data_registry")

# A validator returns None when the value is acceptable, else what is wrong (without the value:
# the accessor appends "got '<value>'", or fills a "{got}" placeholder, masked for secrets).
Validator = Callable[[Any], str | None]


@dataclass(frozen=True)
class Setting:
    """One environment variable: how to parse it, its default and what values are acceptable.

    `default` is the typed value used when the variable is unset or empty; `None` means the
    default is derived at call time (from the data dir, another setting, ...), and `default_doc`
    then says how, as docs/configuration.md words it.
    """

    name: str
    type: type
    default: Any
    doc: str
    validate: Validator | None = None
    default_doc: str | None = None
    secret: bool = False
    choices: tuple[str, ...] = ()


def at_least(low: float) -> Validator:
    return lambda v: None if v >= low else f"must be at least {low:g}"


def positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be a number > 0"


def fraction(v: float) -> str | None:
    return None if 0.0 <= v <= 1.0 else "must be between 0 and 1"


def directory(v: Path) -> str | None:
    # A directory that does not exist yet is fine (it is created when first written); a regular
    # file in its place would fail much later, deep inside a step, with a bare OSError.
    path = Path(v).expanduser()
    return "is an existing file, not a directory" if path.exists() and not path.is_dir() else None


def file_path(v: Path) -> str | None:
    return "is an existing directory, not a file" if Path(v).expanduser().is_dir() else None


def directories(v: str) -> str | None:
    for part in v.split(os.pathsep):
        if part and directory(Path(part)) is not None:
            return f"{part!r} is an existing file, not a directory"
    return None


def patterns(v: str) -> str | None:
    return None if any(v.split(os.pathsep)) else "names no file-name pattern"


def transport_url(v: str) -> str | None:
    # Celery accepts many transports (redis://, amqp://, sqs://...); all are scheme://... URLs.
    scheme, sep, _ = v.partition("://")
    ok = bool(sep) and scheme[:1].isalpha() and all(c.isalnum() or c in "+.-" for c in scheme)
    return None if ok else "must be a URL such as redis://host:6379/0"


def _choices(what: str, *options: str) -> tuple[tuple[str, ...], Validator]:
    # "{got}" marks where get() puts the offending value (the wording the executor always used).
    message = f"unknown {what} {{got}}; expected one of {', '.join(options)}"
    return options, lambda v: None if v in options else message


_EXECUTORS, _check_executor = _choices("executor", "multiprocess", "in_process", "celery")
_START_METHODS, _check_start_method = _choices("start method", "spawn", "forkserver")
_FALLBACKS, _check_fallback = _choices("fallback", "none", "mtime")
_PIXEL_POOLS, _check_pixel_pool = _choices("pixel pool", "auto", "threads", "processes")

DEFAULT_INCOMING_PATTERNS = "*.fits:*.fit:*.fts:*.fits.gz:*.fz".replace(":", os.pathsep)


def _url_setting(name: str) -> Setting:
    return Setting(
        f"CONTIMG_DB_{name.upper()}_URL",
        str,
        None,
        f"SQLAlchemy URL of the {name} database",
        default_doc=f"sqlite:///<data dir>/{name}.sqlite3",
        secret=True,
    )


_ALL: tuple[Setting, ...] = (
    # locations
    Setting(
        "CONTIMG_DATA_DIR",
        Path,
        Path("var"),
        "root of everything the embedded setup writes",
        directory,
    ),
    Setting(
        "CONTIMG_INCOMING_DIRS",
        str,
        None,
        "directories watched for FITS files",
        directories,
        default_doc="<data dir>/incoming",
    ),
    Setting(
        "CONTIMG_HDF5_DIRS",
        str,
        None,
        "directories watched for correlator subband files (UVH5)",
        directories,
        default_doc="<data dir>/hdf5",
    ),
    Setting(
        "CONTIMG_MS_DIRS",
        str,
        None,
        "directories watched for measurement sets (`*.ms` directories)",
        directories,
        default_doc="<data dir>/ms",
    ),
    Setting(
        "CONTIMG_CALTABLE_DIRS",
        str,
        None,
        "directories watched for calibration tables (CASA tables named with a known suffix)",
        directories,
        default_doc="<data dir>/caltables",
    ),
    Setting(
        "CONTIMG_INCOMING_PATTERNS",
        str,
        DEFAULT_INCOMING_PATTERNS,
        "file-name globs to ingest",
        patterns,
    ),
    Setting(
        "CONTIMG_THUMBNAIL_DIR",
        Path,
        None,
        "thumbnails",
        directory,
        default_doc="<data dir>/thumbnails",
    ),
    Setting(
        "CONTIMG_QA_REPORT_DIR",
        Path,
        None,
        "QA reports",
        directory,
        default_doc="<data dir>/qa_reports",
    ),
    Setting(
        "CONTIMG_PUBLISH_DIR",
        Path,
        None,
        "published products",
        directory,
        default_doc="<data dir>/published",
    ),
    Setting(
        "CONTIMG_FITS_CACHE_PATH",
        Path,
        None,
        "FITS metadata cache",
        file_path,
        default_doc="<data dir>/cache/fits_metadata.sqlite3",
    ),
    # databases
    *(_url_setting(n) for n in DATABASE_NAMES),
    Setting(
        "CONTIMG_DB_PASSWORD",
        str,
        None,
        "password of URLs that name a user but none",
        default_doc="unset",
        secret=True,
    ),
    Setting("CONTIMG_DB_POOL_SIZE", int, 5, "pool connections kept", at_least(1)),
    Setting("CONTIMG_DB_MAX_OVERFLOW", int, 10, "connections beyond the pool", at_least(0)),
    Setting("CONTIMG_DB_POOL_TIMEOUT", float, 30.0, "seconds to wait for a connection", positive),
    # -1 is SQLAlchemy's "never recycle".
    Setting("CONTIMG_DB_POOL_RECYCLE", int, 1800, "connection lifetime (s)", at_least(-1)),
    Setting("CONTIMG_DB_POOL_PRE_PING", bool, True, "test connections before use"),
    Setting("CONTIMG_DB_CONNECT_TIMEOUT", float, 10.0, "connect timeout (s)", positive),
    Setting("CONTIMG_DB_HEALTH_TIMEOUT", float, 5.0, "health probe timeout (s)", positive),
    Setting("CONTIMG_DB_BACKUP_KEEP", int, 5, "SQLite backups kept by migrate", at_least(1)),
    # ingest and partitions
    Setting(
        "CONTIMG_PARTITIONS_START",
        dt.date,
        SAMPLE_FIRST_DAY,
        "first daily partition: your first observation day",
    ),
    Setting(
        "CONTIMG_OBS_DATE_FALLBACK",
        str,
        "none",
        "date files without an observation time by their mtime",
        _check_fallback,
        choices=_FALLBACKS,
    ),
    Setting("CONTIMG_INGEST_BATCH", int, 200, "files per ingest transaction", at_least(1)),
    Setting("CONTIMG_INGEST_STALE_MINUTES", int, 30, "stale in_progress claims", at_least(1)),
    Setting("CONTIMG_SENSOR_MAX_HEADER_READS", int, 2000, "header reads per tick", at_least(1)),
    Setting("CONTIMG_SENSOR_TIME_BUDGET_S", float, 30.0, "scan seconds per tick", positive),
    Setting("CONTIMG_SENSOR_MAX_RUNS_PER_TICK", int, 50, "run requests per tick", at_least(1)),
    Setting(
        "CONTIMG_SCAN_MAX_HEADER_READS_PER_RUN",
        int,
        1_000_000,
        "header reads of the `incoming_files` asset's scan",
        at_least(1),
    ),
    Setting("CONTIMG_SCAN_TIME_BUDGET_S", float, 3600.0, "seconds of that scan", positive),
    Setting("CONTIMG_FITS_MAX_WORKERS", int, 4, "parsing threads", at_least(1)),
    Setting("CONTIMG_FITS_CACHE_TTL_SECONDS", float, 86400.0, "cache lifetime", at_least(0)),
    Setting(
        "CONTIMG_PIXEL_THREADS",
        int,
        0,
        "threads of the pixel pass (0: the CPUs the process may use)",
        at_least(0),
    ),
    Setting(
        "CONTIMG_PIXEL_POOL",
        str,
        "auto",
        "what runs the pixel pass: threads, processes, or auto (processes for source fitting)",
        _check_pixel_pool,
        choices=_PIXEL_POOLS,
    ),
    # QA
    Setting("CONTIMG_QA_MAX_FAIL_FRACTION", float, 0.5, "day-level limit of fail grades", fraction),
    # executor
    Setting(
        "CONTIMG_EXECUTOR",
        str,
        "in_process",
        "executor of a run",
        _check_executor,
        choices=_EXECUTORS,
    ),
    Setting("CONTIMG_MAX_CONCURRENT_STEPS", int, 0, "step processes (0: CPUs)", at_least(0)),
    Setting(
        "CONTIMG_MP_START_METHOD",
        str,
        "spawn",
        "multiprocess start method",
        _check_start_method,
        choices=_START_METHODS,
    ),
    Setting(
        "CONTIMG_CELERY_BROKER",
        str,
        "redis://127.0.0.1:6379/0",
        "broker",
        transport_url,
        secret=True,
    ),
    Setting(
        "CONTIMG_CELERY_BACKEND",
        str,
        None,
        "result backend",
        transport_url,
        default_doc="the broker URL",
        secret=True,
    ),
    Setting("CONTIMG_CELERY_QUEUE", str, "dagster", "queue of the steps"),
    # metrics and health
    Setting("CONTIMG_METRICS_DB_TIMEOUT", float, 2.0, "per-database probe timeout", positive),
    Setting("CONTIMG_METRICS_DAGSTER_TIMEOUT", float, 5.0, "instance gauges timeout", positive),
    Setting("CONTIMG_METRICS_DAGSTER", bool, True, "include instance gauges"),
    Setting("CONTIMG_METRICS_REAP_DEAD_PIDS", bool, True, "reap gauge files of dead pids"),
    Setting(
        # Long enough to absorb concurrent scrapers, short against Prometheus's 15 s interval.
        "CONTIMG_METRICS_CACHE_SECONDS",
        float,
        5.0,
        "scrape-time gauges reused (s)",
        at_least(0),
    ),
    Setting("CONTIMG_HEALTH_SENSOR_INTERVAL", int, 60, "health sensor interval (s)", at_least(1)),
    Setting("CONTIMG_AUTO_MIGRATE", bool, False, "health sensor requests migrations"),
)

SETTINGS: dict[str, Setting] = {s.name: s for s in _ALL}


# --- parsing ---------------------------------------------------------------------------------


def env_raw(name: str) -> str | None:
    """The variable's text, None when unset or empty (an empty value means "use the default")."""
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _shown(setting: Setting | None, raw: str) -> str:
    if setting is not None and setting.secret:
        return mask_url(raw) if "://" in raw else "***"
    return raw


def _parse(name: str, kind: type, raw: str, setting: Setting | None) -> Any:
    shown = _shown(setting, raw)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(name, f"expected a boolean (1/0, true/false), got {shown!r}")
    if kind is int:
        # `from None` here and below: Python's own ValueError says no more than our message,
        # and a code location that fails to load prints the whole chain.
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(name, f"expected an integer, got {shown!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(name, f"expected a number, got {shown!r}") from None
    if kind is dt.date:
        try:
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            raise ConfigurationError(
                name, f"expected a date as YYYY-MM-DD, got {shown!r}"
            ) from None
    if kind is Path:
        return Path(raw)
    if setting is not None and setting.choices:
        # Case and '-' vs '_' are forgiven, as the executor always did ("In-Process").
        return raw.strip().lower().replace("-", "_")
    return raw


def get(name: str) -> Any:
    """The typed, validated value of a registered variable, else its registry default."""
    try:
        setting = SETTINGS[name]
    except KeyError:
        raise ConfigurationError(name, "not a registered setting (resources/settings.py)") from None
    raw = env_raw(name)
    if raw is None:
        return setting.default
    value = _parse(name, setting.type, raw, setting)
    if setting.validate is not None:
        problem = setting.validate(value)
        if problem is not None:
            got = repr(_shown(setting, raw))
            message = (
                problem.replace("{got}", got) if "{got}" in problem else f"{problem}, got {got}"
            )
            raise ConfigurationError(name, message)
    return value


def _typed(name: str, kind: type, default: Any) -> Any:
    # Registered variables go through the registry (its default when `default` is None);
    # anything else (a variable another tool owns) is parsed with the caller's default.
    if name in SETTINGS:
        value = get(name)
        if env_raw(name) is None and default is not None:
            return default
        return value
    raw = env_raw(name)
    return default if raw is None else _parse(name, kind, raw, None)


def env_str(name: str, default: str | None = None) -> str | None:
    value = _typed(name, str, default)
    return str(value) if isinstance(value, Path | dt.date) else value


def env_int(name: str, default: int | None = None) -> int:
    return _typed(name, int, default)


def env_float(name: str, default: float | None = None) -> float:
    value = _typed(name, float, default)
    return float(value) if value is not None else value


def env_bool(name: str, default: bool | None = None) -> bool:
    return _typed(name, bool, default)


def env_path(name: str) -> Path | None:
    """A registered path variable, expanded and resolved; None when unset (derived default)."""
    value = get(name)
    return Path(value).expanduser().resolve() if value is not None else None


# --- derived settings ------------------------------------------------------------------------


def data_dir() -> Path:
    return Path(get("CONTIMG_DATA_DIR")).expanduser().resolve()


def under_data_dir(name: str, *relative: str) -> Path:
    """A path variable, else its default under the data dir (read at call time)."""
    return env_path(name) or data_dir().joinpath(*relative)


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
    """URL of one logical database: its env var (checked: `check_database_url`), else a SQLite
    file under the data dir."""
    variable = database_url_env_var(name)
    url = get(variable)
    if url is None:
        return default_database_url(name)
    return check_database_url(variable, url)


#: The backends contimg's SQL is written and tested for (dialect-aware upserts, advisory locks).
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_HOST_PORT = re.compile(r"://(?:[^/?#]*@)?(?P<hostport>[^/?#@]*)")


def _unparsable(url: str) -> str:
    """What is wrong with a URL SQLAlchemy cannot even split (it raises a bare ValueError)."""
    match = _HOST_PORT.search(url)
    hostport = match["hostport"] if match else ""
    if "[" in hostport and "]" not in hostport:
        return "unclosed '[' in the host (an IPv6 address is written [::1])"
    return "the port is not a number"


def check_database_url(
    setting: str, url: str, *, filesystem: bool = True, in_memory: bool = False
) -> str:
    """`url` if it names a database contimg can open, else a ConfigurationError naming `setting`.

    Checked before anything connects, so that a typo is one line naming the variable instead of
    a driver's traceback half-way through a migration: the URL parses (host, port), its dialect
    is one contimg supports and its driver is installed; SQLite must be a file (an in-memory
    database lives as long as one connection: a migration would "succeed" into nothing), in a
    directory that exists or is the data directory (which is created; nothing else is).
    `filesystem=False` skips the directory check, for callers that report a missing directory
    as a database that is down (the health sensor) rather than as a setting. `in_memory=True`
    admits in-memory SQLite, for URLs a program passes in code (tests), never for a setting.
    """
    # SQLAlchemy costs ~0.25 s of start-up; only commands that open databases get here.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = mask_text(url)  # as written (mask_url would re-render it, escaping ':memory:')
    try:
        parsed = make_url(url)
        port = parsed.port
    except ArgumentError:
        raise ConfigurationError(
            setting, f"not a database URL (dialect+driver://user@host:port/database): {shown}"
        ) from None
    except ValueError:
        raise ConfigurationError(setting, f"{_unparsable(url)}: {shown}") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(setting, f"port {port} is out of range 1-65535: {shown}")
    if parsed.drivername in ("postgresql", "postgres"):
        raise ConfigurationError(
            setting,
            "name the driver explicitly: use postgresql+psycopg:// (a bare postgresql:// means "
            "a different driver depending on the SQLAlchemy version)",
        )
    # Read off the name: SQLAlchemy's get_driver_name() loads the dialect, which may not exist.
    backend, _, driver = parsed.drivername.partition("+")
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        what = (
            f"unknown dialect {backend!r}"
            if backend not in SUPPORTED_BACKENDS
            else f"unknown driver {driver!r} of {backend}"
        )
        raise ConfigurationError(
            setting, f"{what}; use sqlite:///<file> or postgresql+psycopg://: {shown}"
        ) from None
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigurationError(
            setting,
            f"dialect {backend!r} is not supported; use sqlite:///<file> or "
            f"postgresql+psycopg://: {shown}",
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigurationError(
            setting,
            f"the {backend} driver {driver!r} is not installed ({exc}); install it or use "
            f"postgresql+psycopg://: {shown}",
        ) from None
    if backend == "sqlite":
        _check_sqlite(setting, parsed.database, dict(parsed.query), shown, filesystem, in_memory)
    return url


def _check_sqlite(
    setting: str,
    database: str | None,
    query: dict[str, Any],
    shown: str,
    filesystem: bool,
    in_memory: bool,
) -> None:
    if database in (None, "", ":memory:") or query.get("mode") == "memory":
        if in_memory:
            return
        raise ConfigurationError(
            setting,
            f"{shown} is an in-memory SQLite database, which lives only as long as one "
            "connection (a migration would write into nothing); give a file: sqlite:///<path>",
        )
    if not filesystem or str(database).startswith("file:"):
        return
    parent = Path(str(database)).expanduser().resolve().parent
    if parent.is_dir() or parent == data_dir():
        return
    problem = "is not a directory" if parent.exists() else "does not exist"
    raise ConfigurationError(
        setting,
        f"the directory {parent} of {shown} {problem}; create it, or point the URL into an "
        f"existing directory (only the data directory {data_dir()} is created for you)",
    )


def validate_all(skip: tuple[str, ...] = ()) -> None:
    """Read every registered variable once, database URLs included; raise the first problem.

    Commands that open databases and the Dagster `Database` resource call this before anything
    connects, so a bad value of any variable stops them with one line naming it (the CLI: exit
    status 2), not only the variables the code path happens to read. `skip`: variables the
    caller overrides (a resource field set in code), whose environment value is not used.
    """
    for name in SETTINGS:
        if name not in skip:
            get(name)
    for name in DATABASE_NAMES:
        if database_url_env_var(name) not in skip:
            database_url(name)


def _default(name: str) -> Any:
    return SETTINGS[name].default


@dataclass(frozen=True)
class PoolSettings:
    pool_size: int = _default("CONTIMG_DB_POOL_SIZE")
    max_overflow: int = _default("CONTIMG_DB_MAX_OVERFLOW")
    pool_timeout: float = _default("CONTIMG_DB_POOL_TIMEOUT")
    pool_recycle: int = _default("CONTIMG_DB_POOL_RECYCLE")
    pool_pre_ping: bool = _default("CONTIMG_DB_POOL_PRE_PING")
    connect_timeout: float = _default("CONTIMG_DB_CONNECT_TIMEOUT")
    health_timeout: float = _default("CONTIMG_DB_HEALTH_TIMEOUT")

    @classmethod
    def from_env(cls) -> PoolSettings:
        return cls(
            pool_size=get("CONTIMG_DB_POOL_SIZE"),
            max_overflow=get("CONTIMG_DB_MAX_OVERFLOW"),
            pool_timeout=get("CONTIMG_DB_POOL_TIMEOUT"),
            pool_recycle=get("CONTIMG_DB_POOL_RECYCLE"),
            pool_pre_ping=get("CONTIMG_DB_POOL_PRE_PING"),
            connect_timeout=get("CONTIMG_DB_CONNECT_TIMEOUT"),
            health_timeout=get("CONTIMG_DB_HEALTH_TIMEOUT"),
        )


def incoming_dirs() -> list[Path]:
    raw = get("CONTIMG_INCOMING_DIRS")
    if raw is None:
        return [data_dir() / "incoming"]
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def hdf5_dirs() -> list[Path]:
    """Where the correlator writes its `*_sbNN.hdf5` files (`hdf5_files_sensor`, `hdf5 scan`)."""
    raw = get("CONTIMG_HDF5_DIRS")
    if raw is None:
        return [data_dir() / "hdf5"]
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def ms_dirs() -> list[Path]:
    """Where the measurement sets are written (`measurement_sets_sensor`, `contimg ms scan`)."""
    raw = get("CONTIMG_MS_DIRS")
    if raw is None:
        return [data_dir() / "ms"]
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def caltable_dirs() -> list[Path]:
    """Where calibration tables are written (`caltables_sensor`, `contimg cal scan`)."""
    raw = get("CONTIMG_CALTABLE_DIRS")
    if raw is None:
        return [data_dir() / "caltables"]
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def incoming_patterns() -> tuple[str, ...]:
    return tuple(p for p in get("CONTIMG_INCOMING_PATTERNS").split(os.pathsep) if p)


def thumbnail_dir() -> Path:
    return under_data_dir("CONTIMG_THUMBNAIL_DIR", "thumbnails")


def dagster_home() -> Path:
    # DAGSTER_HOME is Dagster's own variable, not in the registry.
    raw = env_raw("DAGSTER_HOME")
    return Path(raw).expanduser().resolve() if raw else data_dir() / "dagster_home"
