"""The settings registry: docs/configuration.md and `SETTINGS` agree, and bad values fail clearly."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

from resources.errors import ConfigurationError
from resources.secrets import mask_url
from resources.settings import (
    SETTINGS,
    PoolSettings,
    Setting,
    check_database_url,
    database_url,
    get,
    validate_all,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_ROW = re.compile(r"^\|(?P<name>[^|]*)\|(?P<default>[^|]*)\|")


def documented_defaults() -> dict[str, str]:
    """CONTIMG_* variable -> its default cell, from every table of docs/configuration.md."""
    found: dict[str, str] = {}
    for line in DOCS.read_text().splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        for name in re.findall(r"CONTIMG_[A-Z0-9_]+", match["name"]):
            found[name] = match["default"].replace("`", "").strip()
    return found


def _matches(setting: Setting, cell: str) -> bool:
    if setting.default is None:
        return setting.default_doc is not None and cell.startswith(setting.default_doc)
    head = cell.split(" (")[0].strip()
    if setting.type is bool:
        return head == ("1" if setting.default else "0")
    if setting.type in (int, float):
        return float(head) == float(setting.default)
    if setting.type is Path:
        return Path(head) == Path(setting.default)
    if setting.type is dt.date:
        return head == setting.default.isoformat()
    return head == setting.default


def test_every_registry_variable_is_documented() -> None:
    missing = sorted(set(SETTINGS) - set(documented_defaults()))
    assert not missing, f"in resources/settings.py but not docs/configuration.md: {missing}"


def test_every_documented_variable_is_in_the_registry() -> None:
    unknown = sorted(set(documented_defaults()) - set(SETTINGS))
    assert not unknown, f"in docs/configuration.md but not resources/settings.py: {unknown}"


def test_documented_defaults_match_the_registry() -> None:
    docs = documented_defaults()
    wrong = {
        name: (docs[name], s.default if s.default is not None else s.default_doc)
        for name, s in SETTINGS.items()
        if name in docs and not _matches(s, docs[name])
    }
    assert not wrong, f"documented default differs from the registry: {wrong}"


def _bad_values() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for name, s in SETTINGS.items():
        if s.choices:
            cases.append((name, "bogus"))
        elif s.type in (int, float):
            cases.append((name, "not-a-number"))
        elif s.type is bool:
            cases.append((name, "maybe"))
        elif s.type is dt.date:
            cases += [(name, "2025-13-01"), (name, "01/02/2025")]
    cases += [
        ("CONTIMG_DB_POOL_SIZE", "-1"),
        ("CONTIMG_DB_POOL_SIZE", "0"),
        ("CONTIMG_DB_MAX_OVERFLOW", "-1"),
        ("CONTIMG_DB_POOL_TIMEOUT", "0"),
        ("CONTIMG_DB_CONNECT_TIMEOUT", "-5"),
        ("CONTIMG_DB_HEALTH_TIMEOUT", "0"),
        ("CONTIMG_DB_BACKUP_KEEP", "0"),
        ("CONTIMG_INGEST_BATCH", "0"),
        ("CONTIMG_FITS_MAX_WORKERS", "0"),
        ("CONTIMG_QA_MAX_FAIL_FRACTION", "1.5"),
        ("CONTIMG_MAX_CONCURRENT_STEPS", "-2"),
        ("CONTIMG_HEALTH_SENSOR_INTERVAL", "0"),
        ("CONTIMG_METRICS_DB_TIMEOUT", "0"),
    ]
    return cases


@pytest.mark.parametrize(("name", "value"), _bad_values())
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        get(name)
    assert info.value.setting == name
    assert "\n" not in str(info.value)
    assert repr(value) in str(info.value)


def test_pool_settings_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_DB_POOL_SIZE", "-1")
    with pytest.raises(ConfigurationError, match="CONTIMG_DB_POOL_SIZE"):
        PoolSettings.from_env()


def test_valid_values_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_PARTITIONS_START", "2024-06-01")
    monkeypatch.setenv("CONTIMG_EXECUTOR", "Celery")
    monkeypatch.setenv("CONTIMG_DB_POOL_PRE_PING", "off")
    monkeypatch.setenv("CONTIMG_DB_POOL_RECYCLE", "-1")
    assert get("CONTIMG_PARTITIONS_START") == dt.date(2024, 6, 1)
    assert get("CONTIMG_EXECUTOR") == "celery"
    assert get("CONTIMG_DB_POOL_PRE_PING") is False
    assert get("CONTIMG_DB_POOL_RECYCLE") == -1


def test_unset_or_empty_gives_the_registry_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_DB_POOL_SIZE", "")
    monkeypatch.delenv("CONTIMG_INGEST_BATCH", raising=False)
    assert get("CONTIMG_DB_POOL_SIZE") == SETTINGS["CONTIMG_DB_POOL_SIZE"].default
    assert get("CONTIMG_INGEST_BATCH") == SETTINGS["CONTIMG_INGEST_BATCH"].default


# --- database URLs and the validation pass (issue 17) ---------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg://u:pw@[::1/x", "unclosed '[' in the host"),
        ("postgresql+psycopg://u:pw@h:abc/x", "the port is not a number"),
        ("postgresql+psycopg://u:pw@h:70000/x", "port 70000 is out of range"),
        ("not a url", "not a database URL"),
        ("foo://u:pw@x", "unknown dialect 'foo'"),
        ("sqlite+nope:///x.db", "unknown driver 'nope' of sqlite"),
        ("mysql+pymysql://u:pw@h/x", "dialect 'mysql' is not supported"),
        ("postgresql+pg8000://u:pw@h/x", "the postgresql driver 'pg8000' is not installed"),
        ("postgresql://u:pw@h/x", "name the driver explicitly"),
        ("sqlite://", "in-memory SQLite database"),
        ("sqlite:///:memory:", "in-memory SQLite database"),
        ("sqlite:///file:x?mode=memory&uri=true", "in-memory SQLite database"),
    ],
)
def test_malformed_database_urls_are_refused(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_database_url("CONTIMG_DB_PRODUCTS_URL", url)
    message = str(info.value)
    assert message.startswith("CONTIMG_DB_PRODUCTS_URL: ") and says in message
    assert ":pw@" not in message and "\n" not in message


def test_sqlite_directory_must_exist_unless_it_is_the_data_dir(data_dir: Path) -> None:
    inside = f"sqlite:///{data_dir / 'products.sqlite3'}"
    assert check_database_url("V", inside) == inside
    shutil.rmtree(data_dir)  # the data dir itself may be missing: it is made on first use
    assert check_database_url("V", inside) == inside
    elsewhere = data_dir.parent / "elsewhere" / "x.sqlite3"
    with pytest.raises(ConfigurationError, match=f"the directory {elsewhere.parent} of .* does"):
        check_database_url("V", f"sqlite:///{elsewhere}")
    # Callers that report a missing directory as a database that is down skip the check.
    assert check_database_url("V", f"sqlite:///{elsewhere}", filesystem=False)
    assert not elsewhere.parent.exists()


def test_valid_urls_pass() -> None:
    for url in (
        "postgresql+psycopg://u:pw@[::1]:5432/x",
        "postgresql+psycopg://u@db.example/x",
        "sqlite+aiosqlite:///relative.sqlite3",
    ):
        assert check_database_url("V", url) == url


def test_database_url_reads_and_checks_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTIMG_DB_INGEST_URL", "sqlite://")
    with pytest.raises(ConfigurationError) as info:
        database_url("ingest")
    assert info.value.setting == "CONTIMG_DB_INGEST_URL"


def test_validate_all_reports_the_bad_variable_and_honours_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    validate_all()  # the test defaults are valid
    monkeypatch.setenv("CONTIMG_DB_POOL_TIMEOUT", "abc")
    with pytest.raises(ConfigurationError) as info:
        validate_all()
    assert info.value.setting == "CONTIMG_DB_POOL_TIMEOUT"
    validate_all(skip=("CONTIMG_DB_POOL_TIMEOUT",))
    monkeypatch.setenv("CONTIMG_DB_HDF5_URL", "foo://x")
    with pytest.raises(ConfigurationError, match="CONTIMG_DB_HDF5_URL: unknown dialect"):
        validate_all(skip=("CONTIMG_DB_POOL_TIMEOUT",))


def test_path_settings_refuse_the_wrong_kind_of_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    monkeypatch.setenv("CONTIMG_THUMBNAIL_DIR", str(a_file))
    with pytest.raises(ConfigurationError, match="is an existing file, not a directory"):
        get("CONTIMG_THUMBNAIL_DIR")
    monkeypatch.setenv("CONTIMG_FITS_CACHE_PATH", str(tmp_path))
    with pytest.raises(ConfigurationError, match="is an existing directory, not a file"):
        get("CONTIMG_FITS_CACHE_PATH")
    monkeypatch.setenv("CONTIMG_THUMBNAIL_DIR", str(tmp_path / "not-yet"))  # made when written
    assert get("CONTIMG_THUMBNAIL_DIR") == tmp_path / "not-yet"


def test_malformed_urls_are_masked_not_raised() -> None:
    assert mask_url("postgresql+psycopg://u:pw@[::1/x") == "postgresql+psycopg://u:***@[::1/x"
    assert mask_url("postgresql+psycopg://u:p@ss@h:abc/x") == "postgresql+psycopg://u:***@h:abc/x"
