"""The SQL schema of the ledger and the reflection memory (SQLAlchemy 2.0 typed ORM).

These classes are the typed view the code reads and writes through. The schema
itself is created and evolved only by the Alembic migrations in
``concilium/memory/migrations/versions`` (which also add what the ORM cannot say
portably: the SQLite FTS5 table and the PostgreSQL ``tsvector`` column used by
recall). Keep the two in step: a new column here needs a new migration there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "CHECKED_BY",
    "Base",
    "Behavior",
    "CallRow",
    "EvalResultRow",
    "EvalRow",
    "MemoryUse",
    "Reflection",
    "RunRow",
    "StepRow",
    "TermStat",
    "utcnow",
]

CHECKED_BY: tuple[str, ...] = ("ground_truth", "tool")
"""Verifications that make an outcome *checked*: only their lessons are recalled by default.

An LLM verifier's opinion is recorded (``verified_by="llm"``) but does not count:
self-verification is mostly confirmatory, and shared memory would spread its errors.
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class RunRow(Base):
    """One run of a team on a task: inserted when it starts, completed when it ends."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_team_ns", "team", "namespace"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team: Mapped[str] = mapped_column(String(128), index=True)
    team_hash: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str | None] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="running")
    """``running`` until the run ends (a crashed run stays ``running``), then ``ok``,
    ``stopped``, ``failed`` or ``cancelled``."""
    stop_reason: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    answer_text: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    """Model calls really made (cache hits excluded)."""
    cached_calls: Mapped[int] = mapped_column(Integer, default=0)
    from_cache: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when every model reply of the run was served from the response cache."""
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    wall_ms: Mapped[float] = mapped_column(Float, default=0.0)
    recalled: Mapped[list[Any]] = mapped_column(default=list)
    """Ids of the reflections recalled into this run's prompts."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)

    steps: Mapped[list[StepRow]] = relationship(
        back_populates="run", order_by="StepRow.seq", cascade="all, delete-orphan",
        passive_deletes=True,
    )


class StepRow(Base):
    """One model call or tool call of a run, in the order the run made them."""

    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_run_seq", "run_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(256))
    round: Mapped[int] = mapped_column(Integer, default=0)
    messages: Mapped[list[Any]] = mapped_column(default=list)
    output: Mapped[str] = mapped_column(Text, default="")
    parsed: Mapped[dict[str, Any]] = mapped_column(default=dict)
    answer: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    fallback_used: Mapped[bool] = mapped_column(Boolean, default=False)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    answer_changed: Mapped[bool | None] = mapped_column(Boolean)
    flip: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    behaviors: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    """Ids of the behaviors rendered into this step's prompt (migration 0003)."""

    run: Mapped[RunRow] = relationship(back_populates="steps")


class CallRow(Base):
    """A completed model call of a durable run, so a resumed run never pays for it twice."""

    __tablename__ = "calls"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[dict[str, Any]] = mapped_column()
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


behavior_sources = Table(
    "behavior_sources",
    Base.metadata,
    Column("behavior_id", ForeignKey("behaviors.id", ondelete="CASCADE"), primary_key=True),
    Column("reflection_id", ForeignKey("reflections.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)


class Reflection(Base):
    """A lesson, with the provenance that decides whether it may be recalled."""

    __tablename__ = "reflections"
    __table_args__ = (Index("ix_reflections_ns_created", "namespace", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    """Made by the writer, so a retried write can never store a lesson twice."""
    namespace: Mapped[str] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(Text)
    lesson: Mapped[str] = mapped_column(Text)
    terms: Mapped[str] = mapped_column(Text)
    """What recall searches: the stemmed distinctive words of task and lesson, space-joined."""
    outcome: Mapped[str] = mapped_column(String(16))
    """``success`` or ``failure``: the outcome of the run (or trial) that produced it."""
    verified_by: Mapped[str | None] = mapped_column(String(32))
    """Who checked that outcome: ``ground_truth``, ``tool``, ``llm``, or ``None``."""
    checked: Mapped[bool] = mapped_column(Boolean, default=False)
    """``verified_by`` is one of :data:`CHECKED_BY`."""
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    """The run that taught it: provenance, not a foreign key (lessons outlive ledger rows)."""
    team: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    success_count: Mapped[int] = mapped_column(Integer, default=0)
    """Recalls followed by a correct answer."""
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    """Recalls followed by a wrong answer."""
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # -- migration 0003: quarantine (memory/usefulness.py) --
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    """Kept, never recalled: its usefulness was reliably negative, or a person said so."""
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quarantine_reason: Mapped[str | None] = mapped_column(Text)

    behaviors: Mapped[list[Behavior]] = relationship(
        secondary=behavior_sources, back_populates="sources"
    )

    @property
    def usefulness(self) -> float:
        """Laplace-smoothed share of recalls followed by a correct answer (0.5 when unknown)."""
        return (self.success_count + 1) / (self.success_count + self.failure_count + 2)


class TermStat(Base):
    """How many lessons a term occurs in (``term=""``: all lessons), to query by rare terms."""

    __tablename__ = "term_stats"

    term: Mapped[str] = mapped_column(String(64), primary_key=True)
    docs: Mapped[int] = mapped_column(Integer)


class Behavior(Base):
    """A named, concise procedure distilled from recurring reflections (the handbook)."""

    __tablename__ = "behaviors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(200))
    procedure: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    # -- migration 0003: behaviors reach prompts and earn their place (memory/behaviors.py) --
    terms: Mapped[str | None] = mapped_column(Text)
    """What behavior recall matches a task against: stems of the name, procedure and the
    source lessons' tasks (``None`` on rows older than 0003: computed when read)."""
    right_count: Mapped[int] = mapped_column(Integer, default=0)
    """Uses followed by a right answer."""
    wrong_count: Mapped[int] = mapped_column(Integer, default=0)
    """Uses followed by a wrong answer."""
    source_runs: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    """Why it exists: the runs whose lessons it was distilled from."""
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False)
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    quarantine_reason: Mapped[str | None] = mapped_column(Text)

    sources: Mapped[list[Reflection]] = relationship(
        secondary=behavior_sources, back_populates="behaviors"
    )


class MemoryUse(Base):
    """A lesson or behavior that a run put in a prompt, with how that run ended.

    Usefulness compares these runs with comparable runs (same team and namespace)
    that did not use the item (``concilium.memory.usefulness``).
    """

    __tablename__ = "memory_uses"
    __table_args__ = (
        UniqueConstraint("run_id", "kind", "item_id", name="uq_memory_uses_run_item"),
        Index("ix_memory_uses_item", "kind", "item_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    """``lesson`` or ``behavior``."""
    item_id: Mapped[int] = mapped_column(Integer)
    team: Mapped[str | None] = mapped_column(String(128))
    namespace: Mapped[str | None] = mapped_column(String(128))
    correct: Mapped[bool | None] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalRow(Base):
    """One evaluation (``concilium eval``): enough to rebuild its summary from SQL alone.

    Its id is kept in the output directory's ``eval_id`` file, so rerunning the same
    command (a resume) is the same evaluation (migration 0004).
    """

    __tablename__ = "evals"
    __table_args__ = (Index("ix_evals_started", "started_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(Text)
    """The dataset's spec (a path or ``arith:N``)."""
    dataset_name: Mapped[str] = mapped_column(String(256))
    out_dir: Mapped[str | None] = mapped_column(Text)
    memory: Mapped[str] = mapped_column(String(8))
    teams: Mapped[list[Any]] = mapped_column(JSON)
    """Each team as the summary describes it (name, content hash, grader, ...), in order."""
    item_keys: Mapped[list[Any]] = mapped_column(JSON)
    """The selected items' keys in evaluation order (what the summary counts)."""
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    head: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The summary without its per-team figures: ``complete``, ``dataset``, ``options``,
    ``started_at``, ``finished_at`` as ``summary.json`` has them."""
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalResultRow(Base):
    """The latest graded outcome of one team on one item of an evaluation.

    Keyed as a rerun resumes an item (team content hash, memory mode, reference
    shown, item key), so a resumed or re-sent record replaces its row.
    """

    __tablename__ = "eval_results"
    __table_args__ = (
        Index("ix_eval_results_eval_team", "eval_id", "team"),
        Index("ix_eval_results_run", "run_id"),
    )

    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id", ondelete="CASCADE"),
                                         primary_key=True)
    team_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    memory: Mapped[str] = mapped_column(String(8), primary_key=True)
    revealed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    item: Mapped[str] = mapped_column(Text, primary_key=True)
    """The item's key (``id:digest``): the same item across runs, even if the file changes."""
    item_id: Mapped[str] = mapped_column(Text)
    team: Mapped[str] = mapped_column(String(128))
    position: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    correct: Mapped[bool | None] = mapped_column(Boolean)
    answer: Mapped[str | None] = mapped_column(Text)
    expected: Mapped[list[Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(64))
    """The run in the ledger (when the evaluation recorded its runs)."""
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    wall_ms: Mapped[float] = mapped_column(Float, default=0.0)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The record exactly as ``items.jsonl`` has it."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the outcome was produced (the record's ``at``)."""
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
