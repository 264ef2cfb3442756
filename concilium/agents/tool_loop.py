"""The tool loop: offer a role's tools, run the calls its model makes, feed results back.

Any role with ``tools:`` gets here through :meth:`RunContext.chat`. Each turn is one
budgeted model call through the model door; the calls it asks for run concurrently,
their results go back to the model, and the loop ends when a reply asks for nothing
(that reply is the role's answer) or ``limits.max_tool_calls`` would be passed (the
run stops: a budget). Every model turn and every tool call is a ledger step.

Two protocols, chosen per role (``tool_protocol``, default ``auto``):

- ``native``: function calling, ``tools=`` in the request and ``tool_calls`` in the
  reply, results as ``tool`` messages (OpenAI, and what litellm translates for others);
- ``prompt``: for models without it (the local default, ``scripted/``): the tools and
  an explicit marker format go in the system prompt, the model writes
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, and results come back
  in ``<tool_result>`` blocks. ``auto`` is native where litellm says the model has it.

What a model gets wrong is answered, never raised (STYLE: model-caused errors are
feedback): an unknown tool, arguments that are not a JSON object, a tool that raises
or times out each come back as an ``error: ...`` result naming the fix. Configuration
faults (a tool that does not import, an MCP server that does not start) and budgets
stop the run.

In a durable run every tool call that ran is journaled like a model call (its result,
or its error, on disk before the model sees it), keyed by the task, the role, the
turn, the call's place in the turn, the tool and its arguments in canonical JSON. A
resumed run replays the model's turns from the journal, so it asks for the same calls
and gets their journaled results: a tool with side effects (``python``, an MCP tool
that writes somewhere) does not run twice. A call cut off while it ran (the process
died inside the tool) has no result on disk and runs again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from concilium.agents.llm import ChatResult
from concilium.errors import ConfigError, ModelError
from concilium.tools.registry import MCP_PREFIX, Tool, render_result, resolve_static

if TYPE_CHECKING:
    from concilium.spec import RoleSpec, TeamSpec
    from concilium.tools.mcp import Connection


class RunContext(Protocol):
    """What the tool loop needs of the run (a :class:`concilium.agents.context.RunContext`,
    which calls this module from its ``chat``: a protocol here, not an import back)."""

    team: TeamSpec
    memory: Any
    toolbox: Any

    def model_for(self, spec: RoleSpec) -> str: ...

    async def call_model(self, *args: Any, **kwargs: Any) -> Any: ...

    def count_tool_calls(self, n: int) -> None: ...

    def step(self, **kwargs: Any) -> Any: ...

    def journal_key(self, *parts: Any) -> str | None: ...

    def journal_get(self, key: str | None) -> dict[str, Any] | None: ...

    async def journal_put(self, key: str | None, entry: dict[str, Any]) -> None: ...

__all__ = [
    "ToolBox",
    "ToolCall",
    "ToolChatResult",
    "chat_with_tools",
    "parse_prompt_calls",
    "protocol_for",
]

TOOL_TIMEOUT_S = 120.0
"""Outer limit of one tool call (the sandbox and MCP servers have tighter ones of their own)."""
STOP = "</tool_call>"
"""Where a prompt-protocol model is stopped: it must not go on to invent the result."""

_OPEN = re.compile(r"<\s*tool_call\s*>", re.IGNORECASE)
_CLOSE = re.compile(r"<\s*/\s*tool_call\s*>", re.IGNORECASE)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


@dataclass
class ToolChatResult(ChatResult):
    """The reply that ended a tool loop, with the exchange before it (ledger steps to be)."""

    exchange: list[dict[str, Any]] = field(default_factory=list)
    """Keyword arguments of :meth:`RunContext.step` for each model turn and tool call."""
    conversation: list[dict[str, Any]] = field(default_factory=list)
    """What the final reply was sent: the role's messages, then every call and result.
    Its ledger step records this, not the role's first messages, so the step (and an
    example exported from it) shows the tool results the answer was read from."""


@dataclass(frozen=True)
class ToolCall:
    """One call a model asked for, as it asked (``arguments`` is its raw JSON text)."""

    id: str
    name: str
    arguments: str
    problem: str | None = None
    """Why the call could not even be read (prompt protocol), quoted back to the model."""


@dataclass(frozen=True)
class Outcome:
    text: str
    ok: bool
    ms: float
    arguments: dict[str, Any] | None = None
    replayed: bool = False
    """Answered from the run's journal: the tool ran before the run was resumed."""


@dataclass(frozen=True)
class Journal:
    """Where one model turn's tool calls are journaled (a durable run's ``RunContext``)."""

    ctx: RunContext
    node: str
    kind: str
    sample: int
    round: int
    turn: int

    def key(self, index: int, name: str, arguments: dict[str, Any]) -> str | None:
        """The call's key: the same when the resumed run's replayed turn asks again."""
        canonical = json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)
        return self.ctx.journal_key("tool", self.node, self.kind, self.sample, self.round,
                                    self.turn, index, name, canonical)


# ---------------------------------------------------------------------------- the tools


class ToolBox:
    """A run's tools: resolved once per role, MCP servers connected once per run."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._static: dict[tuple[str, ...], list[Tool]] = {}
        self._connections: dict[str, Connection] = {}

    async def tools_for(self, spec: RoleSpec) -> list[Tool]:
        """The tools ``spec`` names, in its order.

        Raises:
            ConfigError: two of them share a name, or an MCP server lacks a named tool.
        """
        key = tuple(spec.tools)
        if key not in self._static:
            from concilium.spec import namespace_of

            team = self._ctx.team
            self._static[key] = resolve_static(
                spec.tools,
                memory=self._ctx.memory,
                namespace=namespace_of(team),
                verified_only=team.memory.verified_only,
            )
        static = iter(self._static[key])
        tools: list[Tool] = []
        for ref in spec.tools:
            if not ref.startswith(MCP_PREFIX):
                tools.append(next(static))
                continue
            server, _, wanted = ref[len(MCP_PREFIX) :].partition("/")
            offered = await self._connection(server).tools()
            if wanted:
                chosen = [t for t in offered if t.name == wanted]
                if not chosen:
                    names = ", ".join(t.name for t in offered) or "none"
                    raise ConfigError(
                        f"MCP server {server!r} has no tool {wanted!r}; it offers: {names}"
                    )
                offered = chosen
            tools += offered
        seen: dict[str, str] = {}
        for tool in tools:
            if tool.name in seen:
                raise ConfigError(
                    f"two tools are named {tool.name!r} ({seen[tool.name]} and "
                    f"{tool.source}); list only one of them in the role's tools"
                )
            seen[tool.name] = tool.source
        return tools

    def _connection(self, server: str) -> Connection:
        # Synchronous on purpose: parallel roles asking for one server share one connection.
        if server not in self._connections:
            from concilium.tools.mcp import Connection

            self._connections[server] = Connection(server, self._ctx.team.mcp[server])
        return self._connections[server]

    async def aclose(self) -> None:
        """Close every MCP connection (their stdio servers stop)."""
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)


def toolbox(ctx: RunContext) -> ToolBox:
    if ctx.toolbox is None:
        ctx.toolbox = ToolBox(ctx)
    box: ToolBox = ctx.toolbox
    return box


def protocol_for(spec: RoleSpec, model: str) -> Literal["native", "prompt"]:
    """``native`` function calling or the ``prompt`` protocol for this role's model."""
    if spec.tool_protocol != "auto":
        return spec.tool_protocol
    from concilium.agents.llm import supports_tools

    return "native" if supports_tools(model) else "prompt"


# ---------------------------------------------------------------------------- the loop


async def chat_with_tools(
    ctx: RunContext,
    node: str,
    spec: RoleSpec,
    messages: Sequence[dict[str, Any]],
    *,
    kind: str,
    sample: int = 0,
    round: int = 0,
    stop: Sequence[str] | None = None,
    schema: dict[str, Any] | None = None,
) -> ChatResult:
    """Call the model with ``spec``'s tools until it answers; that answer is returned.

    Raises:
        BudgetExceeded: ``limits.max_tool_calls`` (or another budget) would be passed.
        ModelError: the model failed, or ended a turn asking for tools but sent none.
        ConfigError: a tool or MCP server could not be set up.
    """
    tools = await toolbox(ctx).tools_for(spec)
    by_name = {t.name: t for t in tools}
    native = protocol_for(spec, ctx.model_for(spec)) == "native"
    convo: list[dict[str, Any]] = list(messages) if native else with_protocol(messages, tools)
    exchange: list[dict[str, Any]] = []
    offered = [t.openai() for t in tools] if native else None
    stops = list(stop or []) if native else [*(stop or []), STOP]
    try:
        for turn in range(1, 10_000):  # bounded by max_tool_calls and max_llm_calls
            result = await ctx.call_model(
                node,
                spec,
                convo,
                kind=kind,
                sample=sample,
                round=round,
                stop=stops or None,
                schema=schema,
                tools=offered,
            )
            if native:
                calls = [ToolCall(c["id"], c["name"], c["arguments"]) for c in result.tool_calls]
            else:
                calls = parse_prompt_calls(
                    result.text, turn=turn, only=tools[0] if len(tools) == 1 else None
                )
            if not calls:
                if result.finish_reason == "tool_calls" and not result.text.strip():
                    exchange.append(_model_turn(convo, result, calls, native))  # paid for
                    raise ModelError(
                        f"{node}: the model ended its turn with finish_reason "
                        "'tool_calls' but sent no tool call and no text"
                    )
                return ToolChatResult(
                    **_fields(result), exchange=exchange, conversation=list(convo)
                )
            exchange.append(_model_turn(convo, result, calls, native))
            ctx.count_tool_calls(len(calls))  # the turn is in the ledger even if this stops
            convo.append(_assistant(result, calls, native))
            journal = Journal(ctx, node, kind, sample, round, turn)
            outcomes = await asyncio.gather(
                *(run_call(by_name, c, native=native, journal=journal, index=i)
                  for i, c in enumerate(calls))
            )
            for call, outcome in zip(calls, outcomes, strict=True):
                exchange.append(_tool_step(call, outcome, by_name))
            convo += _results(calls, outcomes, native)
        raise ModelError(f"{node}: the tool loop did not end")  # pragma: no cover
    except BaseException:
        # Stopped mid-exchange (a budget, a failing model): its steps still reach the
        # ledger, in the role's round.
        for pending in exchange:
            ctx.step(node=node, role=kind, round=round, **pending)
        raise


async def run_call(
    by_name: dict[str, Tool],
    call: ToolCall,
    *,
    native: bool = True,
    journal: Journal | None = None,
    index: int = 0,
) -> Outcome:
    """Run one call; whatever goes wrong becomes an ``error: ...`` result for the model.

    With a ``journal`` (a durable run), a call already journaled is answered from it
    without running the tool, and a call that ran is journaled before it is returned
    (an error too: a tool that failed after doing half its work must not run again).
    """
    start = time.perf_counter()

    def done(text: str, ok: bool, arguments: dict[str, Any] | None = None) -> Outcome:
        return Outcome(
            render_result(text) if ok else text,
            ok,
            (time.perf_counter() - start) * 1000.0,
            arguments,
        )

    if call.problem is not None:
        return done(f"error: {call.problem}", False)
    tool = by_name.get(call.name)
    if tool is None:
        return done(
            f"error: unknown tool {call.name!r}; the tools are: {', '.join(by_name) or 'none'}",
            False,
        )
    arguments, problem = read_arguments(call.arguments, tool, lenient=not native)
    if arguments is None:
        return done(f"error: {problem}", False)
    # The key before the first await: parallel calls of one turn take theirs in order.
    key = journal.key(index, tool.name, arguments) if journal is not None else None
    known = journal.ctx.journal_get(key) if journal is not None else None
    if known is not None:  # it ran before the run was resumed: not again
        return Outcome(str(known["text"]), bool(known["ok"]), float(known.get("ms", 0.0)),
                       arguments, replayed=True)
    try:
        async with asyncio.timeout(TOOL_TIMEOUT_S):
            value = await tool.call(arguments)
    except TimeoutError:
        outcome = done(
            f"error: tool {tool.name!r} did not finish within {TOOL_TIMEOUT_S:g} s",
            False,
            arguments,
        )
    except (Exception, SystemExit) as error:  # the tool's own fault, reported to the model
        outcome = done(f"error: tool {tool.name!r} failed: {_describe(error)}", False,
                       arguments)
    else:
        outcome = done(render_result(value), True, arguments)
    if journal is not None and key is not None:  # on disk before the model sees it
        from concilium.secrets import redact

        await journal.ctx.journal_put(key, {"tool": tool.name, "text": redact(outcome.text),
                                            "ok": outcome.ok, "ms": outcome.ms})
    return outcome


def read_arguments(
    text: str,
    tool: Tool,
    *,
    lenient: bool = False,
) -> tuple[dict[str, Any] | None, str]:
    """The arguments of a call as a dict, or ``None`` and what to tell the model.

    ``lenient`` (the prompt protocol, for tiny models): a bare value for a tool with one
    argument is taken as that argument.
    """
    text = (text or "").strip()
    if not text:
        return {}, ""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        only = _single_parameter(tool)
        if lenient and only is not None:
            return {only: text}, ""
        return None, (
            f"the arguments of {tool.name!r} are not valid JSON ({error.msg} at "
            f"character {error.pos}): {text[:200]!r}; send a JSON object such as "
            f"{json.dumps(example_arguments(tool))}"
        )
    if isinstance(value, dict):
        return value, ""
    only = _single_parameter(tool)
    if lenient and only is not None and value is not None:
        return {only: value if isinstance(value, str) else json.dumps(value)}, ""
    return None, (
        f"the arguments of {tool.name!r} must be a JSON object, not "
        f"{type(value).__name__}: {text[:200]!r}; send e.g. "
        f"{json.dumps(example_arguments(tool))}"
    )


def _single_parameter(tool: Tool) -> str | None:
    props = tool.parameters.get("properties") or {}
    return next(iter(props)) if len(props) == 1 else None


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if len(text) > 500:
        text = text[:499] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ---------------------------------------------------------------------------- messages


def _fields(result: ChatResult) -> dict[str, Any]:
    return {f.name: getattr(result, f.name) for f in dataclasses.fields(ChatResult)}


def _calls_json(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]


def _model_turn(
    convo: list[dict[str, Any]], result: ChatResult, calls: Sequence[ToolCall], native: bool
) -> dict[str, Any]:
    """The ledger step of a turn that asked for tools: what it was sent and what it asked."""
    shown = result
    if native:  # the reply's text may be empty (content null): show the calls instead
        asked = "\n".join(f"{c.name}({c.arguments})" for c in calls)
        shown = dataclasses.replace(result, text=f"{result.text}\n{asked}".strip())
    return {
        "messages": list(convo),
        "result": shown,
        "parsed": {
            "tool_calls": _calls_json(calls),
            "finish_reason": result.finish_reason,
            # The turn exactly as the conversation carried it on (``output`` is for people):
            # what an exported training example must show the model saying.
            "assistant": _assistant(result, calls, native),
        },
    }


def _tool_step(call: ToolCall, outcome: Outcome, by_name: dict[str, Tool]) -> dict[str, Any]:
    tool = by_name.get(call.name)
    return {
        "tool": call.name or "?",
        "messages": [{"role": "tool_call", "content": call.arguments}],
        "output": outcome.text,
        "latency_ms": outcome.ms,
        "parsed": {
            "call_id": call.id,
            "tool": call.name,
            "arguments": outcome.arguments,
            "ok": outcome.ok,
            "source": tool.source if tool else None,
            **({"replayed": True} if outcome.replayed else {}),
        },
    }


def _assistant(result: ChatResult, calls: Sequence[ToolCall], native: bool) -> dict[str, Any]:
    if not native:
        text = result.text
        if _OPEN.search(text) and not _CLOSE.search(text):
            text += STOP  # cut at the stop sequence: close it as the model meant to
        return {"role": "assistant", "content": text}
    return {
        "role": "assistant",
        "content": result.text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ],
    }


def _results(
    calls: Sequence[ToolCall], outcomes: Sequence[Outcome], native: bool
) -> list[dict[str, Any]]:
    if native:
        return [
            {"role": "tool", "tool_call_id": c.id, "name": c.name, "content": o.text}
            for c, o in zip(calls, outcomes, strict=True)
        ]
    blocks = "\n".join(
        f'<tool_result name="{c.name}">{o.text}</tool_result>'
        for c, o in zip(calls, outcomes, strict=True)
    )
    return [
        {
            "role": "user",
            "content": f"{blocks}\nContinue. When you know the answer, give "
            "it in the format asked for, without a tool call.",
        }
    ]


# ---------------------------------------------------------------------------- prompt protocol


def example_arguments(tool: Tool) -> dict[str, Any]:
    """Arguments to show in an example call: the tool's own, or placeholders by type."""
    if tool.name == "calculator":
        return {"expression": "17 * 24 + 3"}
    placeholder = {
        "string": "...",
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "array": [],
        "object": {},
    }
    props = tool.parameters.get("properties") or {}
    required = tool.parameters.get("required") or list(props)
    return {
        k: placeholder.get(str((props.get(k) or {}).get("type")), "...")
        for k in required
        if k in props
    }


def protocol_text(tools: Sequence[Tool]) -> str:
    """The system-prompt block that teaches the marker protocol and lists the tools."""
    first = tools[0]
    example = json.dumps({"name": first.name, "arguments": example_arguments(first)})
    listing = "\n".join(f"- {t.signature()}" for t in tools)
    return (
        "You can use tools. To call a tool, write only this and stop:\n"
        f'<tool_call>{{"name": TOOL, "arguments": {{...}}}}</tool_call>\n'
        "The result comes back as <tool_result>...</tool_result>. Then continue, and give "
        "your final answer without <tool_call>.\n"
        f"Tools:\n{listing}\n"
        f"Example:\n<tool_call>{example}</tool_call>"
    )


def with_protocol(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[Tool],
) -> list[dict[str, Any]]:
    """``messages`` with the protocol added to the system message (or as one), and the
    first tool's worked example (if it has one) as an exchange before the task."""
    block = protocol_text(tools)
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{block}".strip()
    else:
        out.insert(0, {"role": "system", "content": block})
    demo = next((t for t in tools if t.demo is not None), None)
    if demo is not None and demo.demo is not None:
        question, arguments, result, final = demo.demo
        call = json.dumps({"name": demo.name, "arguments": arguments})
        out[1:1] = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": f"<tool_call>{call}</tool_call>"},
            {"role": "user", "content": f'<tool_result name="{demo.name}">{result}</tool_result>'},
            {"role": "assistant", "content": final},
        ]
    return out


def parse_prompt_calls(
    text: str,
    *,
    turn: int = 1,
    only: Tool | None = None,
) -> list[ToolCall]:
    """The ``<tool_call>`` blocks of a reply, read leniently; ``[]`` when there are none.

    A block may hold one ``{"name", "arguments"}`` object or a list of them, in a code
    fence or not, with its closing tag missing (the stop sequence cut it). ``tool``,
    ``function`` (a name or OpenAI's ``{"name", "arguments"}``), ``args`` and
    ``parameters`` are read as their usual synonyms; with ``only`` (a role's single
    tool), an object without a name is that tool's arguments. A block that cannot be
    read becomes a call whose ``problem`` quotes it and the expected format.
    """
    calls: list[ToolCall] = []
    opens = list(_OPEN.finditer(text or ""))
    for index, match in enumerate(opens):
        end = opens[index + 1].start() if index + 1 < len(opens) else len(text)
        close = _CLOSE.search(text, match.end(), end)
        body = text[match.end() : close.start() if close else end].strip()
        body = _FENCE.sub("", body).strip()
        call_id = f"call_{turn}_{len(calls)}"
        items, problem = _decode(body)
        if problem is not None:
            calls.append(ToolCall(call_id, "", body, problem))
            continue
        for item in items:
            calls.append(_read_item(item, f"call_{turn}_{len(calls)}", only, body))
    return calls


def _decode(body: str) -> tuple[list[Any], str | None]:
    expected = 'expected <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>'
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start < 0:
        return [], f"could not read the tool call {body[:200]!r}: no JSON object; {expected}"
    try:
        value, _ = json.JSONDecoder().raw_decode(body[start:])
    except json.JSONDecodeError as error:
        repaired = _quote_bare_values(body[start:])
        try:
            value, _ = json.JSONDecoder().raw_decode(repaired)
        except json.JSONDecodeError:
            value = None
        if value is not None:
            items = value if isinstance(value, list) else [value]
            if items and all(isinstance(i, dict) for i in items):
                return items, None
        salvaged = _salvage(repaired)
        if salvaged is not None:
            return [salvaged], None
        return [], (
            f"could not read the tool call {body[:200]!r}: {error.msg} at character "
            f"{error.pos}; {expected}"
        )
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, dict) for i in items):
        return [], f"could not read the tool call {body[:200]!r}: not an object; {expected}"
    return items, None


_NAME = re.compile(r'"(?:name|tool)"\s*:\s*"([^"]+)"')
_ARGUMENTS = re.compile(r'"(?:arguments|args|parameters)"\s*:\s*\{')


def _salvage(text: str) -> dict[str, Any] | None:
    """``{"name": ..., "arguments": {...}}`` read from a call whose JSON is broken elsewhere
    (a small model adds an invented ``"result": {...}``, or drops a closing brace): the
    name and the arguments object, each read alone."""
    name = _NAME.search(text)
    found = _ARGUMENTS.search(text)
    if name is None or found is None:
        return None
    try:
        arguments, _ = json.JSONDecoder().raw_decode(text[found.end() - 1 :])
    except json.JSONDecodeError:
        return None
    return {"name": name.group(1), "arguments": arguments} if isinstance(arguments, dict) else None


_BARE = re.compile(r'("[\w-]+"\s*:\s*)(?!["{\[]|true\b|false\b|null\b)([^,{}"\[\]\n]+?)(\s*[,}])')


def _quote_bare_values(text: str) -> str:
    """``{"expression": 17 * 24}`` -> ``{"expression": "17 * 24"}``: small models leave an
    expression unquoted; a value that is already a JSON number is left as it is."""

    def quote(match: re.Match[str]) -> str:
        value = match.group(2).strip()
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return f"{match.group(1)}{json.dumps(value)}{match.group(3)}"
        return match.group(0)

    return _BARE.sub(quote, text)


def _read_item(item: dict[str, Any], call_id: str, only: Tool | None, body: str) -> ToolCall:
    name: Any = item.get("name", item.get("tool"))
    arguments: Any = item.get("arguments", item.get("args", item.get("parameters")))
    function = item.get("function")
    if isinstance(function, dict):
        name = name or function.get("name")
        arguments = arguments if arguments is not None else function.get("arguments")
    elif isinstance(function, str):
        name = name or function
    if name is None and only is not None:  # a single tool: the object is its arguments
        name, arguments = only.name, arguments if arguments is not None else item
    if not isinstance(name, str) or not name:
        return ToolCall(
            call_id,
            "",
            body,
            f"the tool call {body[:200]!r} names no tool; "
            'write {"name": "<tool>", "arguments": {...}}',
        )
    if arguments is None:
        arguments = {}
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return ToolCall(call_id, name, text)
