"""Memory that reads what it writes: behavior uses, usefulness, quarantine.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

- ``memory_uses``: one row per (run, lesson or behavior) the run put in a prompt,
  with the run's team, namespace and outcome, so usefulness compares the runs that
  used an item with comparable runs (same team and namespace) that did not. Unique
  per (run, kind, item): a retried write lands once.
- ``steps.behaviors``: ids of the behaviors rendered into that step's prompt.
- ``behaviors``: ``terms`` (what behavior recall matches a task against),
  ``right_count``/``wrong_count`` (uses followed by a right / wrong answer),
  ``source_runs`` (why it exists: the runs whose lessons it was distilled from),
  ``last_used_at`` and the quarantine columns.
- ``reflections``: the quarantine columns (a quarantined lesson is kept, never
  recalled, and can be restored).
- ``ix_runs_team_ns``: the baseline query of usefulness (runs of one team and
  namespace with a known outcome).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _quarantine_columns(table: str) -> None:
    op.add_column(
        table, sa.Column("quarantined", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column(table, sa.Column("quarantined_at", sa.DateTime(timezone=True)))
    op.add_column(table, sa.Column("quarantine_reason", sa.Text))


def upgrade() -> None:
    op.create_table(
        "memory_uses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item_id", sa.Integer, nullable=False),
        sa.Column("team", sa.String(128)),
        sa.Column("namespace", sa.String(128)),
        sa.Column("correct", sa.Boolean),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("run_id", "kind", "item_id", name="uq_memory_uses_run_item"),
    )
    op.create_index("ix_memory_uses_item", "memory_uses", ["kind", "item_id"])
    op.add_column("steps", sa.Column("behaviors", sa.JSON))
    op.add_column("behaviors", sa.Column("terms", sa.Text))
    op.add_column(
        "behaviors", sa.Column("right_count", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column(
        "behaviors", sa.Column("wrong_count", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("behaviors", sa.Column("source_runs", sa.JSON))
    op.add_column("behaviors", sa.Column("last_used_at", sa.DateTime(timezone=True)))
    _quarantine_columns("behaviors")
    _quarantine_columns("reflections")
    op.create_index("ix_runs_team_ns", "runs", ["team", "namespace"])


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch copy of ``reflections`` would drop its
    # full-text triggers.
    op.drop_index("ix_runs_team_ns", "runs")
    for column in ("quarantine_reason", "quarantined_at", "quarantined"):
        op.drop_column("reflections", column)
    for column in (
        "quarantine_reason",
        "quarantined_at",
        "quarantined",
        "last_used_at",
        "source_runs",
        "wrong_count",
        "right_count",
        "terms",
    ):
        op.drop_column("behaviors", column)
    op.drop_column("steps", "behaviors")
    op.drop_index("ix_memory_uses_item", "memory_uses")
    op.drop_table("memory_uses")
