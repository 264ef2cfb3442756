"""Tools that check answers from outside the model: no shared blind spots.

``TOOLS`` names every built-in tool a team file may list; each is built lazily (LangChain
tools import langchain-core, which a CLI ``--help`` should not pay for). A role's
``tools:`` may also name Python functions, LangChain tools and MCP servers
(:mod:`concilium.tools.registry`); :mod:`concilium.agents.tool_loop` offers them to the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["TOOLS", "get_tool"]


def _calculator() -> Any:
    from concilium.tools.calculator import calculator_tool

    return calculator_tool()


def _python() -> Any:
    from concilium.tools.sandbox import python_tool

    return python_tool()


def _answer_check() -> Any:
    from concilium.tools.answer_check import answer_check_tool

    return answer_check_tool()


def _memory_search() -> Any:
    from concilium.tools.memory_search import memory_search_tool

    return memory_search_tool(None, "default")  # the tool loop binds the run's memory


TOOLS: dict[str, Callable[[], Any]] = {
    "calculator": _calculator,
    "python": _python,
    "answer_check": _answer_check,
    "memory_search": _memory_search,
}


def get_tool(name: str) -> Any:
    """The LangChain tool registered under ``name``."""
    if name not in TOOLS:
        raise KeyError(f"unknown tool {name!r}; known: {', '.join(sorted(TOOLS))}")
    return TOOLS[name]()
