"""Human: a person plays a role, through LangGraph's ``interrupt()``.

``role: human`` with ``plays: verifier`` (or any kind a model could play) puts that
kind's own prompt to a person instead of a model: the run stops at the call, its
state safe in the run's checkpointer; whoever drives the run (the CLI at a terminal,
the service's ``POST /runs/{id}/resume``, ``resume_run(..., answer=...)``) resumes it
with the person's reply, and the played kind's parser reads that reply exactly as
it would read a model's. So a person rejecting with "no, 17 * 24 is 408" becomes a
rejecting :class:`~concilium.agents.roles.results.Verdict` whose feedback the refiner
gets, and the graph around the person does not know it asked one.

A node's ``interrupt: before|after`` (:func:`gate`) is the other way in: the run
pauses before or after the node for a person to approve, stop, or correct it.

When the run resumes, LangGraph runs the interrupted node again from its start;
model calls it had made are answered from the run's call journal, so the person is
asked once and nothing is paid twice.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Protocol

from concilium.agents.llm import ChatResult
from concilium.agents.prompts import render
from concilium.errors import ConfigError

__all__ = ["PERSON", "STOP_WORDS", "Reply", "ask_person", "gate", "read_reply"]

PERSON = "human"
"""The role and model name a person's steps carry in the ledger. Not a ``RoleKind``: a
person plays a role kind of the team (``plays``), or answers a gate, and is no kind of
their own (so, unlike the other role modules, this one declares no ``KIND``)."""
STOP_WORDS = frozenset({"stop", "abort", "quit"})
"""A reply to a node's gate that ends the run there."""
_GO_WORDS = frozenset({"", "y", "yes", "ok", "okay", "go", "continue", "approve", "approved"})

Reply = Literal["go", "stop", "edit"]


class _Run(Protocol):
    """What asking a person needs of the run (a ``RunContext``): its id. This module is
    below ``agents/context.py``, which calls :func:`ask_person` in place of a model."""

    run_id: str


def _interrupt(payload: dict[str, Any]) -> Any:
    """LangGraph's ``interrupt``, with one clear error outside a checkpointed graph run."""
    from langgraph.types import interrupt

    try:
        return interrupt(payload)
    except RuntimeError as error:  # no runnable context: not inside a graph's node
        raise ConfigError(
            f"a person can only be asked inside a running team graph with a checkpointer ({error})"
        ) from None


async def ask_person(
    ctx: _Run, node: str, messages: list[dict[str, str]], *, kind: str
) -> ChatResult:
    """Put the prompt ``messages`` of a ``kind`` role to a person; their reply is the text.

    Called by :meth:`RunContext.chat` in place of a model call, so every role function
    works unchanged with a person. No budget is charged: a person is not a model call.
    """
    said = {m["role"]: m["content"] for m in messages}
    shown = render(
        PERSON, None, plays=kind, question=said.get("user", ""), instructions=said.get("system", "")
    )
    text = {m["role"]: m["content"] for m in shown}
    start = time.perf_counter()
    reply = _interrupt(
        {
            "type": "question",
            "node": node,
            "kind": kind,
            "question": text.get("user", ""),
            "hint": text.get("system", ""),
            "run_id": ctx.run_id,
        }
    )
    return ChatResult(
        text=str(reply if reply is not None else ""),
        model=PERSON,
        latency_ms=(time.perf_counter() - start) * 1000.0,
    )


def read_reply(reply: str) -> Reply:
    """What a reply to a gate means: go on, stop the run, or a correction."""
    word = reply.strip().lower().rstrip(".!")
    if word in _GO_WORDS:
        return "go"
    if word in STOP_WORDS:
        return "stop"
    return "edit"


def gate(
    ctx: _Run, node: str, when: Literal["before", "after"], shown: dict[str, Any]
) -> tuple[str, str]:
    """Pause at node ``node`` for a person; return the question put and their reply.

    ``shown`` is what they decide on: the answer the node will work on (``before``),
    or what it produced (``after``).
    """
    held = shown.get("answer")
    answer = held.get("text") if isinstance(held, dict) else None
    lines = [f"Task: {shown.get('task', '')}"]
    if answer:
        lines.append(f"{'Current' if when == 'before' else 'Its'} answer:\n{answer}")
    verdict = shown.get("verdict")
    if isinstance(verdict, dict):
        lines.append(
            f"Verdict: {'accepted' if verdict.get('accepted') else 'rejected'} "
            f"({verdict.get('reason', '')})"
        )
    hint = (
        "Press Enter (or type yes) to go on, or 'stop' to end the run here."
        if when == "before" or not answer
        else "Press Enter (or type yes) to keep it, 'stop' to end the run here, or type a "
        "corrected answer."
    )
    question = "\n\n".join(lines)
    reply = _interrupt(
        {
            "type": when,
            "node": node,
            "kind": "gate",
            "question": question,
            "hint": hint,
            "run_id": ctx.run_id,
        }
    )
    return question, str(reply if reply is not None else "")
