"""One team over a JSONL of tasks: reading tasks, the one-task runner, the output file.

The runner is shared by every executor (in-process or a Ray worker), so a batch
run on a cluster writes the same records as one run here. Each task's run id is
derived from (team, task id, seed, attempt): a worker that dies mid-task leaves a
ledger row under that id, and the retry finds it — it resumes the run from its
checkpoint (no completed model call is repeated) or, if the run had already
finished, rebuilds the record from the ledger — so the task lands once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError

__all__ = ["FINAL", "Task", "read_done", "read_tasks", "run_task", "task_run_id"]

FINAL = frozenset({"ok", "stopped"})
"""Statuses a rerun keeps; ``failed``, ``timeout`` and ``error`` tasks run again."""


@dataclass(frozen=True)
class Task:
    """One line of the input: its id, the task text, and what checks it."""

    id: str
    task: str
    reference: str | None = None
    tests: str | None = None
    attempt: int = 0
    """How many earlier records of this id ended without a final status (a new run id each)."""


def read_tasks(path: Path) -> list[Task]:
    """Tasks of a JSONL file: ``{"id", "task"|"question", "reference"|"answer"?, "tests"?}``.

    A line without ``id`` is named by its line number, so a rerun of the same file
    finds the same ids. A bad line stops here with its line number, before any run.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: no such input file")
    tasks: list[Task] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}:{number}: a task is a JSON object, not "
                              f"{type(data).__name__}")
        text = data.get("task", data.get("question"))
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{path}:{number}: needs a non-empty 'task' (or 'question') string")
        ident = str(data.get("id", number))
        if ident in seen:
            raise ConfigError(f"{path}:{number}: id {ident!r} appears twice; ids must be unique")
        seen.add(ident)
        reference = data.get("reference", data.get("answer"))
        tests = data.get("tests")
        tasks.append(Task(ident, text, None if reference is None else str(reference),
                          None if tests is None else str(tests)))
    if not tasks:
        raise ConfigError(f"{path}: no tasks in the file")
    return tasks


def read_done(path: Path, team_hash: str) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Records of ``path`` by id (final ones), and how many non-final records each id has.

    A torn last line (a hard kill while writing) is skipped; records of another team
    (another content hash) are not this batch's.
    """
    done: dict[str, dict[str, Any]] = {}
    tries: dict[str, int] = {}
    if not path.exists():
        return done, tries
    for line in path.read_text("utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or record.get("team_hash") != team_hash:
            continue
        ident = str(record.get("id"))
        if record.get("status") in FINAL:
            done[ident] = record
        else:
            tries[ident] = tries.get(ident, 0) + 1
    return done, tries


def task_run_id(team_hash: str, task: Task, seed: int) -> str:
    """The run id of one attempt at ``task``: the same on every worker that retries it."""
    digest = hashlib.sha256(f"{team_hash}\0{task.id}\0{seed}\0{task.attempt}".encode())
    return "b" + digest.hexdigest()[:31]


async def run_task(team: Any, team_hash: str, task: Task, *, seed: int = 0,
                   memory: Any = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Run ``team`` on ``task`` and return its output record (never raises for the task's faults).

    ``memory`` is where the ledger, checkpoints and lessons live (``None``: settings).
    """
    from concilium.team import RunFailed, RunNotResumable

    run_id = task_run_id(team_hash, task, seed)
    start = time.perf_counter()
    result: Any = None
    status, error = "ok", None
    try:
        async with asyncio.timeout(timeout_s):
            prior = await asyncio.to_thread(_ledger_row, run_id, memory)
            if prior is not None and prior["status"] != "running":
                return _record(team, team_hash, task, run_id, prior, None, None, start)
            result = None
            if prior is not None:  # a worker died mid-run: go on from its checkpoint
                try:
                    result = await team.aresume(run_id, memory=memory)
                except RunNotResumable:
                    result = None
            if result is None:
                result = await team.arun(task.task, reference=task.reference, seed=seed,
                                         run_id=run_id, memory=memory, durable=True,
                                         tests=task.tests)
            status = result.status
    except TimeoutError:
        status, error = "timeout", f"task timeout ({timeout_s:g} s)"
    except RunFailed as failure:
        result, status, error = failure.result, "failed", str(failure)
    except ConfigError:
        raise
    except Exception as failure:  # a fault of this task, not of the batch
        status, error = "error", f"{type(failure).__name__}: {failure}"
    row = None
    if result is not None:
        row = {"status": status, "stop_reason": result.stop_reason, "answer": result.answer,
               "answer_text": result.answer_text, "correct": result.correct,
               **result.usage.model_dump(), "wall_ms": result.wall_ms, "rounds": result.rounds}
    return _record(team, team_hash, task, run_id, row, status, error, start)


def _ledger_row(run_id: str, memory: Any) -> dict[str, Any] | None:
    """The ledger's row of ``run_id`` as plain values, or ``None`` (no ledger, or no run)."""
    if memory is False:
        return None
    from concilium.memory.ledger import flush
    from concilium.memory.models import RunRow
    from concilium.memory.store import Memory

    flush(5.0)
    db = (memory if memory is not None else Memory.open()).db
    with db.session() as session:
        row = session.get(RunRow, run_id)
        if row is None:
            return None
        return {"status": row.status, "stop_reason": row.stop_reason, "answer": row.answer,
                "answer_text": row.answer_text or "", "correct": row.correct,
                "error": row.error, "llm_calls": row.llm_calls,
                "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
                "total_tokens": row.prompt_tokens + row.completion_tokens, "cost": row.cost,
                "wall_ms": row.wall_ms}


def _record(team: Any, team_hash: str, task: Task, run_id: str, row: dict[str, Any] | None,
            status: str | None, error: str | None, start: float) -> dict[str, Any]:
    row = dict(row or {})
    return {
        "id": task.id,
        "team": team.name,
        "team_hash": team_hash,
        "status": status or row.get("status", "error"),
        "answer": row.get("answer"),
        "answer_text": row.get("answer_text", ""),
        "reference": task.reference,
        "correct": row.get("correct"),
        "stop_reason": row.get("stop_reason"),
        "error": error if error is not None else row.get("error"),
        "llm_calls": int(row.get("llm_calls", 0)),
        "prompt_tokens": int(row.get("prompt_tokens", 0)),
        "completion_tokens": int(row.get("completion_tokens", 0)),
        "total_tokens": int(row.get("total_tokens", 0)),
        "cost": float(row.get("cost", 0.0)),
        "wall_ms": float(row.get("wall_ms") or (time.perf_counter() - start) * 1000.0),
        "run_id": run_id,
        "attempt": task.attempt,
        "at": time.time(),
    }
