"""The call journal: every completed model call of a durable run, by a stable key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

A run killed mid-way is resumed from its last LangGraph checkpoint; nodes that
were running when it died run again. Their model calls that had already
completed are answered from this table instead of the model, so a resume never
pays for a call twice. The key (``concilium.memory.journal.call_key``) is a hash of
the LangGraph task, the role instance, the sample, the messages and the call's
position within the task, so it is the same when the same task runs again. No
foreign key to ``runs``: the ledger writes run rows in the background, while a
journal entry must be on disk before the call's reply is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("calls")
