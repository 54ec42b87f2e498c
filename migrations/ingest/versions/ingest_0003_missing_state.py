"""Add the `missing` state to ingest_queue: a file that vanished between discovery and processing.

Revision ID: ingest_0003
Revises: ingest_0002
Create Date: 2026-12-02

A file deleted or moved after the scan found it is not a parse failure: it is stored as
`missing`, counted apart, never retried, and put back to `pending` when it reappears. The
upgrade widens the CHECK on `state` and moves rows an earlier build of this release recorded as
`failed` with error_class `FileVanishedError` to `missing`.

What survives a downgrade of this revision: every row. `missing` rows go back to `failed` with
error_class `FileVanishedError` (the vocabulary before this revision has no other place for
them), so a downgrade followed by an upgrade gives back the same states.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "ingest_0003"
down_revision: str | None = "ingest_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VANISHED_CLASS = "FileVanishedError"
OLD_STATES = "'pending', 'in_progress', 'completed', 'failed'"
NEW_STATES = "'pending', 'in_progress', 'completed', 'failed', 'missing'"


def _replace_state_check(states: str) -> None:
    # SQLite cannot alter a CHECK in place: batch mode copies the table with the new constraint.
    with op.batch_alter_table("ingest_queue", schema=None, recreate="auto") as batch_op:
        batch_op.drop_constraint(op.f("ck_ingest_queue_state"), type_="check")
        batch_op.create_check_constraint("state", f"state IN ({states})")


def upgrade() -> None:
    _replace_state_check(NEW_STATES)
    op.execute(
        "UPDATE ingest_queue SET state = 'missing' "
        f"WHERE state = 'failed' AND error_class = '{VANISHED_CLASS}'"
    )


def downgrade() -> None:
    op.execute(
        f"UPDATE ingest_queue SET state = 'failed', error_class = '{VANISHED_CLASS}' "
        "WHERE state = 'missing'"
    )
    _replace_state_check(OLD_STATES)
