"""The state every strategy graph shares, and its reducers.

Values are plain JSON-able dicts (not pydantic objects) so any LangGraph
checkpointer can store them. ``steps`` is the run ledger: parallel nodes append
to it concurrently, so it uses the ``operator.add`` reducer.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from concilium.agents.context import Step

__all__ = ["RunState"]


class RunState(TypedDict, total=False):
    """Input is ``task`` (and optionally ``lessons``); the rest is written by nodes."""

    task: str
    lessons: list[str]
    answer: dict[str, Any] | None
    """The current :class:`~concilium.agents.roles.results.Answer`, as a dict."""
    verdict: dict[str, Any] | None
    """The last :class:`~concilium.agents.roles.results.Verdict`, as a dict."""
    round: int
    """Revision rounds done so far in the strategy's loop."""
    stop_reason: str | None
    """Why the loop stopped; ``None`` while it goes on."""
    steps: Annotated[list[Step], operator.add]
