"""``memory_search``: a role looks up lessons of earlier runs itself, when it wants them.

Recall at run start puts a few lessons in the generator's prompt whether or not they
help; as a tool, any role can ask the team's memory a question of its own, and only
lessons from checked runs are found (as with recall) unless the team says otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["memory_search_tool", "search_lessons"]


def search_lessons(
    memory: Any, namespace: str, query: str, k: int = 3, verified_only: bool = True
) -> str:
    """The ``k`` lessons of ``namespace`` closest to ``query``, one a line."""
    if memory is None:
        return "no memory in this run (it runs without a ledger database)"
    k = max(1, min(int(k), 10))
    lessons = memory.recall(query, namespace=namespace, k=k, verified_only=verified_only)
    if not lessons:
        return "no lessons found"
    return "\n".join(
        f"- {lesson.lesson} (from a task like: {lesson.task[:120]})" for lesson in lessons
    )


def memory_search_tool(memory: Any, namespace: str, *, verified_only: bool = True) -> Any:
    """The search as a LangChain tool bound to one memory and namespace."""
    from langchain_core.tools import StructuredTool

    async def memory_search(query: str, k: int = 3) -> str:
        """Search the team's memory for lessons learned on earlier, similar tasks.

        Args:
            query: what to look for, e.g. the task or the kind of mistake.
            k: how many lessons to return (1-10).
        """
        return await asyncio.to_thread(search_lessons, memory, namespace, query, k, verified_only)

    return StructuredTool.from_function(
        coroutine=memory_search, name="memory_search", parse_docstring=True
    )
