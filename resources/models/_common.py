"""Pieces shared by the five model modules: the constraint naming convention and UTC clocks.

Every logical database gets its own `MetaData` built by `new_metadata()`, so that constraint and
index names are deterministic (`pk_images`, `fk_image_qa_image_id_images`, ...). Alembic needs
stable names to alter or drop a constraint later, and SQLite's batch mode needs them to recreate a
table without losing its constraints.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import MetaData

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> dt.datetime:
    """Timezone-aware now; columns are `DateTime(timezone=True)` on every backend."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """A stored timestamp in UTC: SQLite returns naive UTC, PostgreSQL aware in the session's
    zone (columns are DateTime(timezone=True))."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def sql_in(values: tuple[str, ...]) -> str:
    """`'a', 'b'` for a CHECK constraint; the vocabularies are constants of this package."""
    return ", ".join(f"'{v}'" for v in values)
