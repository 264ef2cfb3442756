"""Asking a person at the terminal, for runs that pause for one (``role: human``,
``interrupt:``), and telling them how to answer later when nobody is there."""

from __future__ import annotations

import sys
from typing import Any

from concilium.cli.common import err

__all__ = ["at_terminal", "paused_note", "terminal_ask"]


def at_terminal() -> bool:
    """Whether a person can be asked here: stdin and stderr are a terminal."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def terminal_ask(question: dict[str, Any]) -> str | None:
    """Show ``question`` on stderr and read one line of reply; end of input (Ctrl-D)
    leaves the run paused (``None``)."""
    where = f"{question.get('node', '?')}" + (
        f" ({question['kind']})" if question.get("kind") not in (None, "gate") else ""
    )
    what = {"before": "before it runs", "after": "after it ran"}.get(question.get("type", ""))
    err.print(f"\n── a person is asked at {where}" + (f", {what}" if what else "") + " ──")
    if question.get("question"):
        err.print(str(question["question"]))
    if question.get("hint"):
        err.print(str(question["hint"]), style="bold")
    try:
        return err.input("> ")
    except EOFError:
        err.print("")
        return None


def paused_note(result: Any) -> None:
    """Say why a run paused, what it asks, and the command that answers it."""
    first = result.pending[0] if result.pending else {}
    err.print(f"paused: run {result.run_id} waits for a person at {first.get('node', '?')}")
    if first.get("question"):
        err.print(str(first["question"]))
    if first.get("hint"):
        err.print(str(first["hint"]))
    err.print(f"answer with: concilium runs resume {result.run_id} --answer '<your reply>'")
