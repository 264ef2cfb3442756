"""Runs that pause for a person: what they ask, how an answer resumes them.

A team with a ``role: human`` or a node's ``interrupt:`` stops at LangGraph's
``interrupt()``; the run's checkpoint then holds the question. These helpers read
it (:func:`pending_of`), build the input that answers it (:func:`answering`), and put
it to whoever ``ask`` is (a terminal, a test) off the event loop (:func:`ask_person`).
The run function (:mod:`concilium.team`) decides when to ask and when to stop paused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from concilium.teams import TeamSpec

__all__ = ["Ask", "answering", "ask_person", "needs_person", "pending_of"]

Ask = Callable[[dict[str, Any]], "str | Awaitable[str | None] | None"]
"""Puts a paused run's question (``{id, node, kind, question, hint}``) to a person and
returns their reply (or an awaitable of it); ``None`` leaves the run paused."""


def needs_person(spec: TeamSpec) -> bool:
    """Whether a run of ``spec`` may pause for a person (its own roles or an inner team's)."""
    return any(
        spec.is_human(key)
        or role.interrupt is not None
        or (isinstance(role.team, TeamSpec) and needs_person(role.team))
        for key, role in spec.roles.items()
    )


def pending_of(snapshot: Any) -> list[dict[str, Any]]:
    """A paused run's questions to a person, oldest first, each with its interrupt id."""
    found = []
    for pause in getattr(snapshot, "interrupts", ()) or ():
        value = pause.value if isinstance(pause.value, dict) else {"question": str(pause.value)}
        found.append({**value, "id": pause.id})
    return found


def answering(question: dict[str, Any], reply: str) -> Any:
    """The input that resumes the run with ``reply`` to ``question`` (and only it)."""
    from langgraph.types import Command

    return Command(resume={question["id"]: reply})


async def ask_person(ask: Ask, question: dict[str, Any]) -> str | None:
    """``ask(question)`` off the event loop (it may block on a terminal), awaited if async."""
    import inspect

    reply: Any = (
        await ask(question)
        if inspect.iscoroutinefunction(ask)
        else await asyncio.to_thread(ask, question)
    )
    if inspect.isawaitable(reply):
        reply = await reply
    return None if reply is None else str(reply)
