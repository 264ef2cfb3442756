"""What every export format shares: the runs of the ledger, filtered, redacted, split-safe.

Memory's code never calls a model, and neither does this: it only reads the ledger
tables through SQLAlchemy. Everything leaving here has passed :func:`redact_obj`, and
a run whose task is a held-out item never leaves at all: an exported training set must
not contain an evaluation item marked held-out, or the next evaluation measures recall.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError

__all__ = ["FORMATS", "Filters", "HeldOut", "RunData", "fingerprint", "read_runs",
           "step_correct"]

FORMATS = ("sft", "dpo", "malt")
TRAIN_SPLITS = frozenset({"train", "training"})
"""A dataset item whose ``split`` is one of these may be exported; any other split is held out."""


@dataclass(frozen=True)
class Filters:
    """Which runs to export (every field ``None``: no restriction)."""

    team: str | None = None
    strategy: str | None = None
    model: str | None = None
    """Runs with at least one step on this model string."""
    namespace: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome_known: bool = False
    """Only runs scored against a reference (``correct`` is not ``None``)."""


@dataclass
class HeldOut:
    """Tasks (and eval runs) that must never be exported.

    Built from dataset files (items whose ``split`` is not ``train``; a file whose items
    carry no split at all is held out whole) and from eval ``--out`` directories
    (``items.jsonl`` records whose ``split`` is not ``train``, by run id and question).
    """

    questions: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path]) -> HeldOut:
        held = cls()
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                held._add_eval_dir(path)
            elif path.is_file():
                held._add_dataset(path)
            else:
                raise ConfigError(f"--held-out {raw}: no such dataset file or eval directory")
        return held

    def _add_dataset(self, path: Path) -> None:
        from concilium.eval.datasets import load_dataset

        items = load_dataset(path).items
        marked = any("split" in item.meta for item in items)
        for item in items:
            if not marked or str(item.meta.get("split", "")).lower() not in TRAIN_SPLITS:
                self.questions.add(_norm(item.question))

    def _add_eval_dir(self, path: Path) -> None:
        items = path / "items.jsonl"
        if not items.is_file():
            raise ConfigError(f"--held-out {path}: not an eval output directory (no items.jsonl)")
        for line in items.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of an interrupted evaluation
            if str(record.get("split") or "").lower() in TRAIN_SPLITS:
                continue
            if record.get("run_id"):
                self.run_ids.add(record["run_id"])
            if record.get("question"):
                self.questions.add(_norm(record["question"]))

    def holds(self, run_id: str, task: str) -> bool:
        return run_id in self.run_ids or _norm(task) in self.questions


@dataclass
class RunData:
    """One run and its steps as plain, redacted dicts, in the order the run made them."""

    id: str
    team: str
    strategy: str
    namespace: str | None
    task: str
    reference: str | None
    correct: bool | None
    answer: str | None
    started_at: datetime | None
    steps: list[dict[str, Any]]


def _norm(text: str) -> str:
    from concilium.secrets import mask_known

    return " ".join(mask_known(text).split())


def read_runs(db: Any, filters: Filters | None = None, held_out: HeldOut | None = None,
              ) -> tuple[list[RunData], int]:
    """Finished runs matching ``filters``, oldest first, and how many held-out ones were left."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from concilium.memory.ledger import flush
    from concilium.memory.models import RunRow, StepRow
    from concilium.secrets import redact_obj, secret_values

    flush()
    filters = filters or Filters()
    query = (select(RunRow).options(selectinload(RunRow.steps))
             .where(RunRow.status != "running").order_by(RunRow.started_at, RunRow.id))
    for column, value in ((RunRow.team, filters.team), (RunRow.strategy, filters.strategy),
                          (RunRow.namespace, filters.namespace)):
        if value is not None:
            query = query.where(column == value)
    if filters.since is not None:
        query = query.where(RunRow.started_at >= filters.since)
    if filters.until is not None:
        query = query.where(RunRow.started_at < filters.until)
    if filters.outcome_known:
        query = query.where(RunRow.correct.is_not(None))
    if filters.model is not None:
        query = query.where(RunRow.id.in_(
            select(StepRow.run_id).where(StepRow.model == filters.model)))
    secrets = secret_values()
    runs, held = [], 0
    with db.session() as session:
        for row in session.execute(query).scalars():
            if held_out is not None and held_out.holds(row.id, row.task):
                held += 1
                continue
            steps = [redact_obj({
                "seq": s.seq, "node": s.node, "role": s.role, "kind": s.kind, "model": s.model,
                "round": s.round, "messages": list(s.messages or []), "output": s.output or "",
                "parsed": dict(s.parsed or {}), "answer": s.answer,
                "answer_changed": s.answer_changed, "flip": s.flip,
            }, secrets) for s in row.steps]
            runs.append(RunData(
                id=row.id, team=row.team, strategy=row.strategy, namespace=row.namespace,
                task=redact_obj(row.task, secrets), reference=row.reference,
                correct=row.correct, answer=row.answer, started_at=row.started_at,
                steps=steps))
    return runs, held


def step_correct(run: RunData, step: dict[str, Any]) -> bool | None:
    """Whether this step's own answer is the run's reference (``None``: no reference/answer)."""
    from concilium.agents.answers import same

    if run.reference is None or step.get("answer") is None:
        return None
    return same(step["answer"], run.reference, "number") or same(
        step["answer"], run.reference, "text")


def fingerprint(*parts: Any) -> str:
    """A stable digest of ``parts``: two records with the same one are duplicates."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def dedup(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], str],
          ) -> list[dict[str, Any]]:
    """``rows`` without repeats of ``key`` (the first one stays)."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        k = key(row)
        if k not in seen:
            seen.add(k)
            kept.append(row)
    return kept
