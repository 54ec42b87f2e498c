"""A portable `INSERT ... ON CONFLICT DO UPDATE` for the backends we support."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from resources.errors import ConfigurationError


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: Sequence[str],
    chunk: int = 500,
) -> None:
    """Insert rows, or update every non-key column of the row with the same unique key.

    Idempotent by construction, which is what makes a re-run of a partition (or a run killed
    half-way and started again) leave exactly one row per file.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        insert = postgresql.insert
    elif dialect == "sqlite":
        insert = sqlite.insert
    else:
        raise ConfigurationError(
            "database", f"upsert is implemented for PostgreSQL and SQLite, not {dialect}"
        )
    columns = [c for c in rows[0] if c not in key]
    for start in range(0, len(rows), chunk):
        stmt = insert(table).values(list(rows[start : start + chunk]))
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in columns}
        )
        conn.execute(stmt)
