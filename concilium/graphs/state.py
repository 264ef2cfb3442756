"""The state every strategy graph shares, and its reducers.

Values are plain JSON-able dicts (not pydantic objects) so any LangGraph
checkpointer can store them. ``steps`` is the run ledger: parallel nodes append
to it concurrently, so it uses the ``operator.add`` reducer. Fields that parallel
branches of a custom graph may write in the same step use :func:`latest` (the
write of the later task wins, in LangGraph's deterministic task order) instead of
LangGraph's default, which refuses two writes in one step.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import StateGraph

from concilium.agents.context import RunContext, Step

__all__ = ["RunState", "TeamGraph", "latest", "merge"]


def latest(_old: Any, new: Any) -> Any:
    """Reducer: keep the newest value (plain assignment that tolerates parallel writers)."""
    return new


def merge(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: a dict updated key by key, so parallel nodes can each add their entry."""
    return {**(old or {}), **(new or {})}


class RunState(TypedDict, total=False):
    """Input is ``task`` (and optionally ``lessons``, ``tests``); the rest is written by nodes."""

    task: str
    lessons: list[str]
    tests: str
    """Test code for a ``check: tests`` verifier; default: the tests written in the task."""
    answer: Annotated[dict[str, Any] | None, latest]
    """The current :class:`~concilium.agents.roles.results.Answer`, as a dict."""
    verdict: Annotated[dict[str, Any] | None, latest]
    """The last :class:`~concilium.agents.roles.results.Verdict`, as a dict."""
    critique: Annotated[dict[str, Any] | None, latest]
    """The last :class:`~concilium.agents.roles.results.Critique`, as a dict."""
    decision: Annotated[dict[str, Any] | None, latest]
    """The last :class:`~concilium.agents.roles.results.ModeratorDecision`, as a dict."""
    round: Annotated[int, latest]
    """Revision rounds done so far in the strategy's loop."""
    stop_reason: Annotated[str | None, latest]
    """Why the loop stopped; ``None`` while it goes on."""
    samples: Annotated[list[dict[str, Any]], operator.add]
    """Independent samples (self-consistency): ``{sample, batch, answer}``."""
    turns: Annotated[list[dict[str, Any]], operator.add]
    """Debate turns: ``{debater, round, index, answer}``."""
    reflections: Annotated[list[str], operator.add]
    """Reflexion's lessons from failed trials of this task, oldest first."""
    results: Annotated[dict[str, dict[str, Any]], merge]
    """Custom graphs: each node's latest result (and how often it ran), by node name."""
    report: Annotated[dict[str, Any], merge]
    """What the strategy wants a reader to know (votes, samples saved, consensus round)."""
    steps: Annotated[list[Step], operator.add]


TeamGraph = StateGraph[RunState, RunContext, RunState, RunState]
"""What a strategy's ``build`` returns: an uncompiled graph over :class:`RunState`."""
