"""The ground floor: what a run leaves behind, as plain data.

:class:`Step` (one model or tool call), :class:`Usage` (what a run consumed) and
:class:`RunResult` (its outcome) are read by memory, the ledger, the CLI, the
service and the exporters alike. This module imports nothing of concilium, so
anything may import it: records flow up from here, never down into it.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, Field

__all__ = ["RunResult", "Status", "Step", "Usage", "new_run_id"]

Status = Literal["ok", "stopped", "failed", "paused"]


class Step(TypedDict, total=False):
    """One entry of the run ledger: an LLM call or a tool call."""

    id: str
    node: str
    role: str
    kind: str  # "llm" | "tool" | "human" (a person's reply)
    model: str
    round: int
    messages: list[dict[str, Any]]
    output: str
    parsed: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_ms: float
    attempts: int
    fallback_used: bool
    cached: bool
    replayed: bool
    answer: str | None
    answer_changed: bool | None
    flip: str | None  # "right->wrong" | "wrong->right" when a reference is known
    at: float
    behaviors: list[int]  # ids of the behaviors rendered into this call's prompt (issue 13)


def new_run_id() -> str:
    """A fresh run id (also the run's LangGraph thread id)."""
    return uuid.uuid4().hex[:12]


class Usage(BaseModel):
    """What a run consumed."""

    llm_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    retries: int = 0
    fallbacks: int = 0

    @classmethod
    def of(cls, steps: list[Step]) -> Usage:
        """Totals of a run's steps; a reply from the response cache is free and not a call.

        ``RunContext`` charges its budgets by the same rule, so a run's usage and the
        limits it was held to always agree.
        """
        llm = [s for s in steps if s.get("kind") == "llm"]
        paid = [s for s in llm if not s.get("cached")]
        prompt = sum(s.get("prompt_tokens", 0) for s in paid)
        completion = sum(s.get("completion_tokens", 0) for s in paid)
        return cls(
            llm_calls=len(paid),
            tool_calls=sum(1 for s in steps if s.get("kind") == "tool"),
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            cost=sum(s.get("cost", 0.0) for s in paid),
            retries=sum(max(0, s.get("attempts", 1) - 1) for s in llm),
            fallbacks=sum(1 for s in llm if s.get("fallback_used")),
        )


class RunResult(BaseModel):
    """The outcome of one run: the answer, every step, and what it cost."""

    run_id: str
    team: str
    strategy: str
    task: str
    answer: str | None = Field(None, description="The final answer, normalised.")
    answer_text: str = Field("", description="The full text the answer came from.")
    status: Status = "ok"
    stop_reason: str | None = None
    pending: list[dict[str, Any]] = Field(
        default_factory=list,
        description="A paused run's questions to a person ({id, node, kind, question, hint}); "
        "answer with resume_run(run_id, answer=...).",
    )
    error: str | None = None
    rounds: int = 0
    reference: str | None = None
    correct: bool | None = None
    flips: dict[str, int] = Field(default_factory=dict)
    report: dict[str, Any] = Field(
        default_factory=dict,
        description="The strategy's own summary (votes, samples saved, debate rounds...).",
    )
    usage: Usage = Field(default_factory=Usage)
    wall_ms: float = 0.0
    steps: list[dict[str, Any]] = Field(default_factory=list)
    lessons: list[str] = Field(default_factory=list, description="Lessons put in the prompts.")
    remembered: list[int] = Field(
        default_factory=list, description="Ids of the lessons this run stored in memory."
    )
