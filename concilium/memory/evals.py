"""Evaluation results in SQL: one row per evaluation, one per (team, item) outcome.

The eval runner (:mod:`concilium.eval.store`) hands plain dicts to these
functions; this module only stores and reads them, so it knows nothing of teams
or graders. Every write is an upsert on the table's key, so a resumed
evaluation, a record sent twice, or a whole output directory synced again
replaces rows and never adds any.

Example:
    >>> db = open_database()
    >>> save_eval(db, {"id": "e1", "dataset": "arith:20", ...})
    >>> save_results(db, "e1", records)
    >>> [row.record for row in load_results(db, "e1")]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, func, select

from concilium.errors import ConfigError
from concilium.memory.db import Database
from concilium.memory.models import EvalResultRow, EvalRow, utcnow

__all__ = ["RESULT_KEY", "find_eval", "list_evals", "load_results", "result_row", "save_eval",
           "save_results"]

RESULT_KEY = ("eval_id", "team_hash", "memory", "revealed", "item")
"""What identifies one outcome: the way a rerun decides an item is already done."""
BATCH = 200
"""Rows per statement: well under SQLite's limit on bound parameters."""


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(float(epoch), UTC)


def _upsert(db: Database, table: Table, rows: Sequence[dict[str, Any]],
            key: Sequence[str]) -> None:
    """Insert ``rows``, replacing every column of a row whose ``key`` is already there."""
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    fresh = insert(table)
    statement = fresh.on_conflict_do_update(
        index_elements=list(key),
        set_={c.name: fresh.excluded[c.name] for c in table.columns if c.name not in key})
    with db.write() as session:
        for start in range(0, len(rows), BATCH):
            session.execute(statement, list(rows[start:start + BATCH]))


def save_eval(db: Database, evaluation: dict[str, Any]) -> None:
    """Write (or replace) an evaluation's row.

    ``evaluation`` holds ``id``, ``out_dir``, ``teams`` (the summary's team
    descriptions), ``item_keys`` and ``head`` (the summary's ``complete``,
    ``dataset``, ``options``, ``started_at``, ``finished_at``).
    """
    head = evaluation["head"]
    row = {
        "id": evaluation["id"],
        "dataset": str(head["dataset"]["spec"]),
        "dataset_name": str(head["dataset"]["name"]),
        "out_dir": evaluation.get("out_dir"),
        "memory": str(head["options"]["memory"]),
        "teams": list(evaluation["teams"]),
        "item_keys": list(evaluation["item_keys"]),
        "options": dict(head["options"]),
        "head": dict(head),
        "complete": bool(head["complete"]),
        "started_at": _time(head["started_at"]) or utcnow(),
        "finished_at": _time(head.get("finished_at")),
        "updated_at": utcnow(),
    }
    _upsert(db, EvalRow.__table__, [row], ["id"])  # type: ignore[arg-type]


def result_row(eval_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The ``eval_results`` row of one ``items.jsonl`` record."""
    answer = record.get("answer")
    return {
        "eval_id": eval_id,
        "team_hash": str(record["team_hash"]),
        "memory": str(record.get("memory", "off")),
        "revealed": bool(record.get("reference_revealed")),
        "item": str(record["item"]),
        "item_id": str(record.get("item_id", "")),
        "team": str(record["team"]),
        "position": record.get("position"),
        "status": str(record.get("status", "ok")),
        "correct": None if record.get("correct") is None else bool(record["correct"]),
        "answer": None if answer is None else str(answer),
        "expected": record.get("expected"),
        "error": record.get("error"),
        "run_id": record.get("run_id"),
        "llm_calls": int(record.get("llm_calls", 0)),
        "prompt_tokens": int(record.get("prompt_tokens", 0)),
        "completion_tokens": int(record.get("completion_tokens", 0)),
        "total_tokens": int(record.get("total_tokens", 0)),
        "cost": float(record.get("cost", 0.0)),
        "wall_ms": float(record.get("wall_ms", 0.0)),
        "record": record,
        "created_at": _time(record.get("at")) or utcnow(),
        "written_at": utcnow(),
    }


def save_results(db: Database, eval_id: str, records: Iterable[dict[str, Any]]) -> None:
    """Write (or replace) the outcome of each record; the last of one key wins."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for record in records:
        row = result_row(eval_id, record)
        rows[tuple(row[k] for k in RESULT_KEY)] = row  # one statement may not hit a key twice
    _upsert(db, EvalResultRow.__table__, list(rows.values()), RESULT_KEY)  # type: ignore[arg-type]


def find_eval(db: Database, ident: str) -> EvalRow:
    """The evaluation ``ident`` names: its id or a unique prefix of it.

    Raises:
        ConfigError: no evaluation, or more than one, matches.
    """
    with db.session() as session:
        row = session.get(EvalRow, ident)
        if row is not None:
            return row
        escaped = ident.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        found = list(session.scalars(
            select(EvalRow).where(EvalRow.id.like(escaped + "%", escape="\\")).limit(2)))
    if not found:
        raise ConfigError(f"no evaluation {ident!r} in the database; `concilium evals list` "
                          "shows the stored ones")
    if len(found) > 1:
        raise ConfigError(f"{ident!r} is the start of more than one evaluation id; give more "
                          "of it")
    return found[0]


def load_results(db: Database, eval_id: str) -> list[EvalResultRow]:
    """Every stored outcome of an evaluation (all its teams, modes and items)."""
    with db.session() as session:
        return list(session.scalars(select(EvalResultRow).where(
            EvalResultRow.eval_id == eval_id)))


def list_evals(db: Database, *, limit: int = 20) -> list[tuple[EvalRow, int]]:
    """The newest evaluations, each with how many outcomes are stored for it."""
    counts = (select(EvalResultRow.eval_id, func.count().label("n"))
              .group_by(EvalResultRow.eval_id).subquery())
    with db.session() as session:
        rows = session.execute(
            select(EvalRow, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.eval_id == EvalRow.id)
            .order_by(EvalRow.started_at.desc(), EvalRow.id).limit(limit))
        return [(row, int(n)) for row, n in rows]
