"""A run's :class:`~concilium.records.RunResult`, from the graph's last state and its steps.

One function, so ``concilium run``, the service and a graph embedded in plain
LangGraph code all describe a run the same way (the ledger row is written from it).
"""

from __future__ import annotations

import time
from typing import Any

from concilium.agents.context import RunContext
from concilium.records import RunResult, Status, Step, Usage
from concilium.secrets import redact
from concilium.spec import TeamSpec

__all__ = ["result_of"]


def result_of(
    spec: TeamSpec,
    ctx: RunContext,
    task: str,
    state: dict[str, Any],
    steps: list[Step],
    status: Status,
    reason: str | None,
    error: str | None,
    start: float,
) -> RunResult:
    """The result of a run of ``spec`` that started at ``start`` (``time.perf_counter``)."""
    answer = state.get("answer") or {}
    value = answer.get("value")
    flips: dict[str, int] = {"changed": 0, "right->wrong": 0, "wrong->right": 0}
    for step in steps:
        if step.get("answer_changed"):
            flips["changed"] += 1
        if step.get("flip"):
            flips[str(step["flip"])] += 1
    return RunResult(
        run_id=ctx.run_id,
        team=spec.name,
        strategy=spec.strategy.name,
        task=redact(task),
        answer=value,
        answer_text=redact(answer.get("text", "")),
        status=status,
        stop_reason=reason,
        error=error,
        rounds=int(state.get("round", 0) or 0),
        reference=ctx.reference,
        correct=ctx.correct(value),
        flips=flips,
        report=dict(state.get("report") or {}),
        usage=Usage.of(steps),
        wall_ms=(time.perf_counter() - start) * 1000.0,
        steps=[dict(s) for s in steps],
    )
