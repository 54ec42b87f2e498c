"""Helpers shared by the sensor tests: real databases at a chosen revision, log capture."""

from __future__ import annotations

import logging
from pathlib import Path

from migrations import runner
from resources.settings import DATABASE_NAMES, default_database_url


class ListHandler(logging.Handler):
    """Collects the records a sensor logs through `context.log`."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int | None = None) -> list[str]:
        return [r.getMessage() for r in self.records if level is None or r.levelno == level]


def sqlite_urls(data_dir: Path) -> dict[str, str]:
    return {name: default_database_url(name, data_dir) for name in DATABASE_NAMES}


def migrate_all(urls: dict[str, str], targets: dict[str, str] | None = None) -> None:
    """Bring each database to its target (default head) with the same runner the jobs use."""
    for name, url in urls.items():
        runner.upgrade(name, url, (targets or {}).get(name, "head"), backup=False)
