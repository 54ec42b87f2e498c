"""The products tables the daily assets write, as Dagster table metadata.

Each SQL-backed asset declares the table it writes (`dagster/table_name`, `<database>.<table>`
since the five logical databases may share one PostgreSQL database or be five SQLite files)
and its columns (`dagster/column_schema`), derived from the SQLAlchemy model so that the UI
cannot drift from the schema. Each materialization adds `dagster/row_count` (the whole table)
and `dagster/partition_row_count` (the rows of that observation day).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg
from sqlalchemy import Table

from resources.database import Databases
from resources.repositories.products import row_counts

TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"
ROW_COUNT = "dagster/row_count"
PARTITION_ROW_COUNT = "dagster/partition_row_count"


def column_schema(table: Table) -> dg.TableSchema:
    """One `TableColumn` per column: SQLAlchemy type name, nullability, uniqueness, comment."""
    columns = []
    for column in table.columns:
        unique = bool(column.unique) or bool(column.primary_key)
        columns.append(
            dg.TableColumn(
                column.name,
                type(column.type).__name__.lower(),
                description=column.comment or (column.doc if isinstance(column.doc, str) else None),
                constraints=dg.TableColumnConstraints(
                    nullable=bool(column.nullable) and not column.primary_key, unique=unique
                ),
            )
        )
    return dg.TableSchema(columns=columns)


def table_definition_metadata(table: Table, database: str = "products") -> dict[str, Any]:
    """Definition metadata of an asset that writes ``table`` of the logical ``database``."""
    return {TABLE_NAME: f"{database}.{table.name}", COLUMN_SCHEMA: column_schema(table)}


def row_count_metadata(dbs: Databases, table: Table, day: dt.date) -> dict[str, Any]:
    """`dagster/row_count` and `dagster/partition_row_count` of ``table`` after writing ``day``."""
    with dbs.connect("products") as conn:
        total, of_day = row_counts(conn, table.name, day)
    return {ROW_COUNT: total, PARTITION_ROW_COUNT: of_day}
