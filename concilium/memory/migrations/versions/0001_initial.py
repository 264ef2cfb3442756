"""Initial schema: runs, steps, reflections (with full-text search), behaviors.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Recall searches ``reflections.terms``: the stemmed distinctive words of a lesson
and its task, computed in Python (``concilium.memory.store.index_terms``) so both
databases index exactly the same tokens, and ``term_stats`` counts the lessons
each term occurs in, so recall can query by the rarest few terms of a task only.
Full-text search is dialect-specific and lives only here, not in the ORM:

- SQLite: a contentless FTS5 table ``reflections_fts`` kept in step by triggers.
  Its ``meta`` column holds two tokens, the namespace (hex-encoded, so any name is
  one exact token) and whether the outcome was checked, so recall filters on
  both inside the index instead of after it. Ranking is bm25 on the terms.
- PostgreSQL: a generated, stored ``tsvector`` column over the terms (the
  ``simple`` configuration: they are stemmed already) with a GIN index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tokens of the FTS ``meta`` column, as SQL over a row (``new.`` or ``old.``).
# Namespace -> 'n' + hex + '0' (the trailing digit keeps the porter stemmer off it).
_META = "'n' || hex({r}.namespace) || '0 ' || CASE WHEN {r}.checked THEN 'ck1' ELSE 'ck0' END"

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE reflections_fts USING fts5("
    "meta, terms, content='', tokenize='unicode61 remove_diacritics 0')",
    # bm25 weights: meta 0 (it matches every candidate), terms 1.
    "INSERT INTO reflections_fts(reflections_fts, rank) VALUES('rank', 'bm25(0.0, 1.0)')",
    f"""CREATE TRIGGER reflections_fts_insert AFTER INSERT ON reflections BEGIN
        INSERT INTO reflections_fts(rowid, meta, terms)
        VALUES (new.id, {_META.format(r="new")}, new.terms);
    END""",
    f"""CREATE TRIGGER reflections_fts_delete AFTER DELETE ON reflections BEGIN
        INSERT INTO reflections_fts(reflections_fts, rowid, meta, terms)
        VALUES ('delete', old.id, {_META.format(r="old")}, old.terms);
    END""",
    f"""CREATE TRIGGER reflections_fts_update
        AFTER UPDATE OF namespace, terms, checked ON reflections BEGIN
        INSERT INTO reflections_fts(reflections_fts, rowid, meta, terms)
        VALUES ('delete', old.id, {_META.format(r="old")}, old.terms);
        INSERT INTO reflections_fts(rowid, meta, terms)
        VALUES (new.id, {_META.format(r="new")}, new.terms);
    END""",
]

_POSTGRES_FTS = [
    "ALTER TABLE reflections ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
    "to_tsvector('simple'::regconfig, terms)) STORED",
    "CREATE INDEX ix_reflections_tsv ON reflections USING gin (tsv)",
]


def upgrade() -> None:
    now = sa.func.current_timestamp()
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("team_hash", sa.String(64), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(128)),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("stop_reason", sa.Text),
        sa.Column("answer", sa.Text),
        sa.Column("answer_text", sa.Text),
        sa.Column("reference", sa.Text),
        sa.Column("correct", sa.Boolean),
        sa.Column("llm_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("from_cache", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost", sa.Float, nullable=False, server_default="0"),
        sa.Column("wall_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("recalled", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_team", "runs", ["team"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("round", sa.Integer, nullable=False, server_default="0"),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("parsed", sa.JSON, nullable=False),
        sa.Column("answer", sa.Text),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost", sa.Float, nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Float, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("fallback_used", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("answer_changed", sa.Boolean),
        sa.Column("flip", sa.String(16)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_index("ix_steps_run_seq", "steps", ["run_id", "seq"])

    op.create_table(
        "reflections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("lesson", sa.Text, nullable=False),
        sa.Column("terms", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("verified_by", sa.String(32)),
        sa.Column("checked", sa.Boolean, nullable=False, server_default=sa.false()),
        # Provenance, not a foreign key: a lesson outlives its run's ledger rows, and a
        # run recorded elsewhere (or with record=False) still names itself.
        sa.Column("run_id", sa.String(64)),
        sa.Column("team", sa.String(128)),
        sa.Column("model", sa.String(256)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("use_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("success_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failure_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_reflections_ns_created", "reflections", ["namespace", "created_at"])
    op.create_index("ix_reflections_run_id", "reflections", ["run_id"])

    op.create_table(
        "term_stats",
        sa.Column("term", sa.String(64), primary_key=True),
        sa.Column("docs", sa.Integer, nullable=False),
    )

    op.create_table(
        "behaviors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("procedure", sa.Text, nullable=False),
        sa.Column("model", sa.String(256)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("use_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_behaviors_namespace", "behaviors", ["namespace"])

    op.create_table(
        "behavior_sources",
        sa.Column("behavior_id", sa.Integer, sa.ForeignKey("behaviors.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("reflection_id", sa.Integer,
                  sa.ForeignKey("reflections.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_behavior_sources_reflection_id", "behavior_sources", ["reflection_id"])

    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE_FTS, "postgresql": _POSTGRES_FTS}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS reflections_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS reflections_fts")
    op.drop_table("behavior_sources")
    op.drop_table("behaviors")
    op.drop_table("term_stats")
    op.drop_table("reflections")
    op.drop_table("steps")
    op.drop_table("runs")
