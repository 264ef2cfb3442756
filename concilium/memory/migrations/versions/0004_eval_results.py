"""Evaluation results in SQL, beside the eval's own ``items.jsonl`` / ``summary.json``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

- ``evals``: one row per evaluation (its id is kept in the output directory's
  ``eval_id`` file, so rerunning the same command is the same evaluation): the
  dataset, the teams as the summary describes them, the selected item keys in
  order, the options, when it started and finished, and the summary's header, so
  the summary can be rebuilt from SQL alone.
- ``eval_results``: the latest graded outcome of one team on one item, keyed as a
  rerun resumes it: (eval, team content hash, memory mode, reference revealed,
  item key). A resumed or re-sent record replaces the row, never adds one. The
  whole ``items.jsonl`` record is kept in ``record``; the columns beside it are
  for queries (status, correct, usage, the ledger's ``run_id``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("dataset_name", sa.String(256), nullable=False),
        sa.Column("out_dir", sa.Text),
        sa.Column("memory", sa.String(8), nullable=False),
        sa.Column("teams", sa.JSON, nullable=False),
        sa.Column("item_keys", sa.JSON, nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("head", sa.JSON, nullable=False),
        sa.Column("complete", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_evals_started", "evals", ["started_at"])
    op.create_table(
        "eval_results",
        sa.Column("eval_id", sa.String(64), sa.ForeignKey("evals.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("team_hash", sa.String(64), primary_key=True),
        sa.Column("memory", sa.String(8), primary_key=True),
        sa.Column("revealed", sa.Boolean, primary_key=True),
        sa.Column("item", sa.Text, primary_key=True),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("correct", sa.Boolean),
        sa.Column("answer", sa.Text),
        sa.Column("expected", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("run_id", sa.String(64)),
        sa.Column("llm_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost", sa.Float, nullable=False, server_default="0"),
        sa.Column("wall_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_eval_results_eval_team", "eval_results", ["eval_id", "team"])
    op.create_index("ix_eval_results_run", "eval_results", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_eval_results_run", "eval_results")
    op.drop_index("ix_eval_results_eval_team", "eval_results")
    op.drop_table("eval_results")
    op.drop_index("ix_evals_started", "evals")
    op.drop_table("evals")
