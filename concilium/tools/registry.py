"""Every tool a role can be given, as one :class:`Tool`: a name, a JSON schema, a coroutine.

A role's ``tools:`` list names them; each entry is one of

- a built-in (``calculator``, ``python``, ``answer_check``, ``memory_search``);
- a Python import path, ``package.module:attribute`` (or ``package.module.attribute``), to
  a function with type hints (its schema comes from the signature and the docstring's
  ``Args:``) or to a LangChain ``BaseTool``;
- ``mcp:<server>`` (every tool of an MCP server the team file declares under ``mcp:``)
  or ``mcp:<server>/<tool>`` (one of them), see :mod:`concilium.tools.mcp`.

Functions become LangChain ``StructuredTool`` objects and LangChain tools give their
OpenAI function schema through ``convert_to_openai_tool``: one well-kept path from a
signature to a schema and from a model's arguments to a validated call, instead of our own.

Example:
    >>> tools = resolve_static(["calculator", "mypkg.tools:lookup"])
    >>> tools[0].openai()["function"]["name"]
    'calculator'
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from concilium.errors import ConfigError

__all__ = [
    "MCP_PREFIX",
    "Tool",
    "check_reference",
    "from_function",
    "from_langchain",
    "import_tool",
    "resolve_static",
]

MCP_PREFIX = "mcp:"
MAX_RESULT_CHARS = 4000
"""A tool's result is cut to this many characters before the model sees it (the ledger
keeps the same text): a tool that prints a megabyte must not fill the context."""

_IMPORT_PATH = re.compile(
    r"^[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
    r"|\.[A-Za-z_]\w*)$"
)
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What OpenAI-compatible servers accept as a function name."""


@dataclass(frozen=True)
class Tool:
    """One tool as a model is offered it and as the tool loop calls it."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments (an ``object``)."""
    call: Callable[[dict[str, Any]], Awaitable[Any]] = field(repr=False, compare=False)
    """Runs the tool with the model's arguments; what it returns is shown to the model."""
    source: str = "builtin"
    """Where it came from: ``builtin``, ``python``, ``langchain`` or ``mcp:<server>``."""
    demo: tuple[str, dict[str, Any], str, str] | None = None
    """A worked example for the prompt protocol: (question, arguments, result, final reply).
    Shown as an exchange before the task: small models copy a demonstration far more
    reliably than they follow a description of the format."""

    def openai(self) -> dict[str, Any]:
        """The ``tools=`` entry of an OpenAI-style request."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def signature(self) -> str:
        """A one-line summary for a prompt: ``name(arg: type, ...) - description``."""
        props = self.parameters.get("properties") or {}
        args = ", ".join(
            f"{k}: {v.get('type', 'any')}" if isinstance(v, dict) else k for k, v in props.items()
        )
        return f"{self.name}({args}) - {self.description}"


def from_langchain(tool: Any, *, source: str = "langchain") -> Tool:
    """A LangChain ``BaseTool`` as a :class:`Tool` (its schema and its validated ``ainvoke``)."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    function = convert_to_openai_tool(tool)["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}

    async def call(arguments: dict[str, Any]) -> Any:
        return await tool.ainvoke(arguments)

    return Tool(
        name=str(function["name"]),
        description=str(function.get("description") or ""),
        parameters=parameters,
        call=call,
        source=source,
    )


def from_function(func: Callable[..., Any], *, name: str | None = None) -> Tool:
    """A typed Python function (sync or async) as a :class:`Tool`.

    The schema comes from the type hints; argument descriptions from a Google-style
    ``Args:`` section when the docstring has one that documents every argument.
    """
    from langchain_core.tools import StructuredTool

    kwargs: dict[str, Any] = {"name": name} if name else {}
    if _is_async(func):
        kwargs["coroutine"] = func
    else:
        kwargs["func"] = func
    try:
        tool = StructuredTool.from_function(parse_docstring=True, **kwargs)
    except ValueError:  # a docstring without a complete Args: section
        tool = StructuredTool.from_function(**kwargs)
    return from_langchain(tool, source="python")


def _is_async(func: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(func)


def import_tool(path: str) -> Tool:
    """The tool an import path names: a typed function, or a LangChain ``BaseTool``.

    Raises:
        ConfigError: the path does not import, or names something that is neither.
    """
    module_name, _, attribute = path.partition(":")
    if not attribute:
        module_name, _, attribute = path.rpartition(".")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the module itself failing
        raise ConfigError(
            f"tool {path!r}: cannot import module {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"tool {path!r}: module {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    from langchain_core.tools import BaseTool

    if isinstance(target, BaseTool):
        return from_langchain(target)
    if callable(target) and not isinstance(target, type):
        try:
            return from_function(target)
        except Exception as error:  # no usable signature
            raise ConfigError(
                f"tool {path!r}: cannot make a tool of this function: {error}; "
                "give every argument a type hint"
            ) from None
    raise ConfigError(
        f"tool {path!r}: {type(target).__name__} is neither a function nor a LangChain BaseTool"
    )


def check_reference(ref: str) -> str | None:
    """Why ``ref`` cannot name a tool (``None`` when it can), for team-file validation.

    Built-in names are checked against the registry, import paths are imported (a typo
    fails when the team loads, not in the middle of a run); ``mcp:`` references are
    checked against the team's ``mcp:`` servers by the team spec.
    """
    from concilium.tools import TOOLS

    if ref in TOOLS:
        return None
    if ref.startswith(MCP_PREFIX):
        server, _, tool = ref[len(MCP_PREFIX) :].partition("/")
        if not _TOOL_NAME.match(server) or (tool and not tool.strip()):
            return f"bad MCP tool reference {ref!r}; expected mcp:<server> or mcp:<server>/<tool>"
        return None
    if "." in ref or ":" in ref:
        if not _IMPORT_PATH.match(ref):
            return f"bad import path {ref!r}; expected package.module:function"
        try:
            import_tool(ref)
        except ConfigError as error:
            return str(error)
        return None
    return (
        f"unknown tool {ref!r}; known: {', '.join(sorted(TOOLS))}, a Python import path "
        "(package.module:function), or mcp:<server>"
    )


def builtin(
    name: str, *, memory: Any = None, namespace: str = "default", verified_only: bool = True
) -> Tool:
    """A built-in tool; ``memory_search`` searches ``memory`` (the run's) in ``namespace``."""
    from concilium.tools import TOOLS

    if name == "memory_search":
        from concilium.tools.memory_search import memory_search_tool

        return from_langchain(
            memory_search_tool(memory, namespace, verified_only=verified_only), source="builtin"
        )
    tool = from_langchain(TOOLS[name](), source="builtin")
    if name == "calculator":
        tool = dataclasses.replace(
            tool,
            demo=(
                "What is 12 * 7 + 5?",
                {"expression": "12 * 7 + 5"},
                "89",
                "Answer: 89",
            ),
        )
    return tool


def resolve_static(refs: Sequence[str], **builtin_options: Any) -> list[Tool]:
    """The built-in and Python tools ``refs`` name, in order (``mcp:`` entries are skipped:
    they need a connection, which :class:`concilium.agents.tool_loop.ToolBox` opens)."""
    from concilium.tools import TOOLS

    found: list[Tool] = []
    for ref in refs:
        if ref in TOOLS:
            found.append(builtin(ref, **builtin_options))
        elif not ref.startswith(MCP_PREFIX):
            found.append(import_tool(ref))
    return found


def render_result(value: Any) -> str:
    """What a tool returned, as the text a model reads (JSON for data, cut to a bound)."""
    if isinstance(value, str):
        text = value
    else:
        content = getattr(value, "content", None)  # a LangChain ToolMessage
        if isinstance(content, str):
            text = content
        else:
            try:
                text = json.dumps(value, ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                text = str(value)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"… [cut: {len(text)} characters in all]"
    return text
