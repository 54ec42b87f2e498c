"""Add ingest_queue.error_class, split out of last_error.

Revision ID: ingest_0002
Revises: ingest_0001
Create Date: 2026-11-29

Before this revision a failure was recorded as one string, "ErrorClass: message", in
last_error. The upgrade adds error_class and, for rows whose last_error starts with an
identifier followed by ": ", moves that identifier into error_class and keeps the message in
last_error.

What survives a downgrade of this revision: every row and every value. The downgrade folds
error_class back into last_error ("ErrorClass: message") before dropping the column, so a
downgrade followed by an upgrade gives back the same error_class and last_error.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0002"
down_revision: str | None = "ingest_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPLIT = {
    "sqlite": """
        UPDATE ingest_queue
        SET error_class = substr(last_error, 1, instr(last_error, ': ') - 1),
            last_error = substr(last_error, instr(last_error, ': ') + 2)
        WHERE last_error IS NOT NULL
          AND instr(last_error, ': ') > 1
          AND instr(substr(last_error, 1, instr(last_error, ': ') - 1), ' ') = 0
    """,
    "postgresql": """
        UPDATE ingest_queue
        SET error_class = substring(last_error from '^([A-Za-z_][A-Za-z0-9_.]*): '),
            last_error = regexp_replace(last_error, '^[A-Za-z_][A-Za-z0-9_.]*: ', '')
        WHERE last_error ~ '^[A-Za-z_][A-Za-z0-9_.]*: '
    """,
}

FOLD = """
    UPDATE ingest_queue
    SET last_error = error_class || ': ' || COALESCE(last_error, '')
    WHERE error_class IS NOT NULL
"""


def upgrade() -> None:
    with op.batch_alter_table("ingest_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_class", sa.String(length=128), nullable=True))
    dialect = op.get_context().dialect.name
    if dialect not in SPLIT:
        raise NotImplementedError(f"no error_class backfill for the {dialect} dialect")
    op.execute(SPLIT[dialect])


def downgrade() -> None:
    op.execute(FOLD)
    with op.batch_alter_table("ingest_queue", schema=None) as batch_op:
        batch_op.drop_column("error_class")
