"""What every node of a run shares: the team, budgets, and the step ledger.

A :class:`RunContext` is the LangGraph *context* of a run (``context_schema``):
nodes receive it as ``runtime.context``. It is the only place that counts calls,
tokens and cost against the team's limits, and the only place that turns a model
call into a ledger :class:`Step`, which it also publishes on LangGraph's custom
stream so anyone streaming the graph sees progress live.

A call streams its tokens when someone listens: ``on_delta`` (``Team.astream``, the
CLI, the service) or LangGraph's ``stream_mode="messages"``. Each piece of text is
then a ``{"type": "delta", ...}`` event (to ``on_delta`` and the custom stream) and a
LangChain chat-model token (see :mod:`concilium.agents.streaming`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from concilium import tracing
from concilium.agents.llm import ChatResult, Endpoint, ResponseCache, RetryPolicy, chat
from concilium.agents.streaming import Delta, langchain_messages
from concilium.errors import BudgetExceeded, ConfigError
from concilium.records import Step, new_run_id
from concilium.secrets import StreamRedactor, redact, redact_obj, secret_values
from concilium.spec import RoleSpec, TeamSpec

if TYPE_CHECKING:
    from concilium.memory.backend import CallLog
    from concilium.memory.behaviors import MemoryView

__all__ = ["RunContext", "Step", "new_run_id"]


@dataclass
class RunContext:
    """Per-run dependencies and counters, handed to every node by LangGraph."""

    team: TeamSpec
    run_id: str = field(default_factory=new_run_id)
    default_model: str = "local/smollm2"
    reference: str | None = None
    reveal_reference: bool = True
    """Whether a ``check: reference`` verifier may see ``reference`` (an evaluation keeps
    its answer key from the team unless told otherwise); scoring and flips always use it."""
    seed: int = 0
    llm_calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    on_step: Callable[[Step], None] | None = None
    on_delta: Callable[[dict[str, Any]], None] | None = None
    """Called with each piece of a model's reply as it is generated (a ``delta`` event:
    ``node``, ``role``, ``round``, ``sample``, ``model``, ``text``, ``restart``)."""
    cache: ResponseCache | None = None
    """Model-response cache (the Redis layer's, when configured); ``None`` calls every time."""
    journal: CallLog | None = None
    """A durable run's completed calls: replayed instead of repeated when the run resumes."""
    managed: bool = False
    """Whether the run's recall, ledger and timeout are done around the graph (by
    ``concilium.run.execute``); if not, the compiled team graph does them itself."""
    tool_calls: int = 0
    """Tool calls the models made so far (``limits.max_tool_calls``)."""
    memory: Any = None
    """The run's reflection memory, searched by the ``memory_search`` tool (``None``: none)."""
    toolbox: Any = field(default=None, repr=False)
    """The run's tools and MCP connections (:class:`concilium.agents.tool_loop.ToolBox`)."""
    memory_view: MemoryView | None = None
    """The lessons and behaviors each role reads (``memory.lessons_for``/``behaviors_for``)."""
    _seen: dict[str, int] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- models

    def model_for(self, spec: RoleSpec) -> str:
        """Role model > team model > the process default (``CONCILIUM_MODEL``)."""
        return spec.model or self.team.model or self.default_model

    def endpoint_for(self, spec: RoleSpec, node: str = "") -> Endpoint:
        """Where a role's model is called, with its key read from the environment.

        A role with its own ``api_base`` takes its key and headers from itself only, so a
        key named for one server is never sent to another; without one, each of
        ``api_base``, ``api_key_env`` and ``extra_headers`` falls back to the team's.
        """
        team = self.team
        if spec.api_base is not None:
            base, key_env, headers = spec.api_base, spec.api_key_env, spec.extra_headers
        else:
            base = team.api_base
            key_env = spec.api_key_env or team.api_key_env
            headers = spec.extra_headers if spec.extra_headers is not None else team.extra_headers
        return Endpoint(self.model_for(spec), base, _key(key_env, node or spec.role),
                        headers)

    def _check_budget(self) -> None:
        limits = self.team.limits
        if self.llm_calls >= limits.max_llm_calls:
            raise BudgetExceeded(f"max_llm_calls ({limits.max_llm_calls}) reached")
        if limits.max_tokens is not None and self.tokens >= limits.max_tokens:
            raise BudgetExceeded(f"token budget ({limits.max_tokens}) spent")
        if limits.max_cost is not None and self.cost >= limits.max_cost:
            raise BudgetExceeded(f"cost budget (${limits.max_cost}) spent")

    async def chat(
        self,
        node: str,
        spec: RoleSpec,
        messages: Sequence[dict[str, str]],
        *,
        kind: str,
        sample: int = 0,
        round: int = 0,
        stop: Sequence[str] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> ChatResult:
        """One budgeted model call for role instance ``node`` (its ``kind`` told to the provider).

        ``sample`` distinguishes independent calls of one role (samples, debaters)
        so they get distinct seeds and never share a cache entry. ``schema`` (a JSON
        schema) is asked for as structured output where the model supports it; the
        role's parser reads the reply either way. A role a person plays (``role: human``)
        asks the person instead (:mod:`concilium.agents.roles.human`), free of budget.
        ``round`` is told to traces and token deltas.

        A role with ``tools`` gets them offered here: the tool loop
        (:mod:`concilium.agents.tool_loop`) calls the model, runs the tools it asks for and
        calls it again until it answers; the reply returned is that answer, and
        :meth:`step` records the exchange before it.
        """
        if spec.role == "human" or (spec.role is None and node == "human"):
            from concilium.agents.roles.human import ask_person

            return await ask_person(self, node, list(messages), kind=kind)
        if spec.tools:
            from concilium.agents.tool_loop import chat_with_tools

            return await chat_with_tools(self, node, spec, messages, kind=kind, sample=sample,
                                         round=round, stop=stop, schema=schema)
        return await self.call_model(node, spec, messages, kind=kind, sample=sample,
                                     round=round, stop=stop, schema=schema)

    async def call_model(
        self,
        node: str,
        spec: RoleSpec,
        messages: Sequence[dict[str, Any]],
        *,
        kind: str,
        sample: int = 0,
        round: int = 0,
        stop: Sequence[str] | None = None,
        schema: dict[str, Any] | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
    ) -> ChatResult:
        """Exactly one budgeted, journaled model call (``tools``: native function schemas)."""
        self._check_budget()
        self.llm_calls += 1  # reserved before the await, so parallel calls cannot overshoot
        model = self.model_for(spec)
        key = (self._journal_key("call", node, kind, sample, model, messages=messages)
               if self.journal is not None else None)
        known = self.journal.get(key) if self.journal is not None and key else None
        if known is not None:  # made before a crash: the resumed run does not pay again
            result = ChatResult(**{**known, "replayed": True})
            self._count(result)
            return result
        retry = self.team.retry
        where = self.endpoint_for(spec, node)
        metadata = {"role": kind, "node": node, "run_id": self.run_id, "sample": sample,
                    "round": round}
        listener = await langchain_messages(messages, model=model, metadata=metadata)
        on_delta = finish = None
        if self.on_delta is not None or (listener is not None and listener.wants_tokens()):
            on_delta, finish = self._deltas(metadata, listener)
        try:
            result = await self._call(messages, model, spec, node, where, retry, metadata,
                                      stop, kind, schema, on_delta, tools)
            if finish is not None:
                await finish()
        except BaseException as error:
            if listener is not None:
                await listener.error(error)
            raise
        if listener is not None:
            await listener.end(result.text, {"input_tokens": result.prompt_tokens,
                                             "output_tokens": result.completion_tokens,
                                             "total_tokens": result.total_tokens})
        if self.journal is not None and key:  # on disk before anyone uses the reply
            entry = dataclasses.asdict(result)
            entry["text"] = redact(entry["text"])
            await self.journal_put(key, entry)
        self._count(result)
        return result

    def journal_key(self, *parts: Any) -> str | None:
        """The journal key of a call other than a model's (a tool call) in the running
        task, or ``None`` when the run keeps no journal (it is not durable) or runs
        outside a LangGraph task: then the call is simply made."""
        if self.journal is None:
            return None
        return self._journal_key(*parts)

    def journal_get(self, key: str | None) -> dict[str, Any] | None:
        """What the journal holds for ``key`` (completed before the run was resumed)."""
        if self.journal is None or key is None:
            return None
        return self.journal.get(key)

    async def journal_put(self, key: str | None, entry: dict[str, Any]) -> None:
        """Commit ``entry`` under ``key`` before its caller uses it (no journal: nothing)."""
        if self.journal is None or key is None:
            return
        if not self.journal.put_now(key, entry):  # SQLite's lock was taken: wait for it
            await asyncio.to_thread(self.journal.put, key, entry)

    def _deltas(self, metadata: dict[str, Any], listener: Any,
                ) -> tuple[Callable[[Delta], Any], Callable[[], Any]]:
        """Where one call's deltas go (``on_delta``, the custom stream, LangChain), redacted
        as a stream, and the coroutine that sends what was held back when the reply ends.

        Redacted here, once, for every listener: a key the tokenizer cut in two (or a
        ``Bearer`` token in the piece after the word) passes a per-piece redaction.
        """
        try:
            from langgraph.config import get_stream_writer

            writer: Callable[[Any], None] | None = get_stream_writer()
        except (RuntimeError, ImportError):
            writer = None
        base = {"type": "delta", "run_id": self.run_id, "node": metadata["node"],
                "role": metadata["role"], "round": metadata["round"],
                "sample": metadata["sample"]}

        redactor = StreamRedactor()
        model = ""

        async def send(delta: Delta) -> None:
            nonlocal redactor, model
            model = delta.model
            if delta.restart:  # a new try: what the last one held back is void too
                redactor = StreamRedactor()
            text = redactor.feed(delta.text)
            if not text and not delta.restart:
                return
            await emit(dataclasses.replace(delta, text=text))

        async def finish() -> None:
            if text := redactor.flush():
                await emit(Delta(text, model))

        async def emit(delta: Delta) -> None:
            event = {**base, "model": delta.model, "text": delta.text,
                     "restart": delta.restart}
            if self.on_delta is not None:
                self.on_delta(event)
            if writer is not None:
                writer(event)
            if listener is not None:
                await listener.token(delta)

        return send, finish

    async def _call(self, messages: Sequence[dict[str, str]], model: str, spec: RoleSpec,
                    node: str, where: Endpoint, retry: Any, metadata: dict[str, Any],
                    stop: Sequence[str] | None, kind: str, schema: dict[str, Any] | None,
                    on_delta: Callable[[Delta], Any] | None,
                    tools: Sequence[dict[str, Any]] | None = None) -> ChatResult:
        return await chat(
            messages,
            model=model,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            seed=self.seed + int(metadata["sample"]),
            fallbacks=[f if isinstance(f, str) else Endpoint(
                f.model, f.api_base, _key(f.api_key_env, node), f.extra_headers)
                for f in spec.fallbacks],
            retry=RetryPolicy(
                attempts=retry.attempts,
                initial_backoff_s=retry.initial_backoff_s,
                max_backoff_s=retry.max_backoff_s,
                timeout_s=spec.timeout_s or retry.timeout_s,
            ),
            metadata=metadata,
            stop=stop,
            cache=self.cache,
            response_format=_response_format(model, kind, schema),
            api_base=where.api_base,
            api_key=where.api_key,
            extra_headers=where.extra_headers,
            tools=tools,
            on_delta=on_delta,
        )

    def _count(self, result: ChatResult) -> None:
        """Charge a reply to the budgets exactly as :meth:`Usage.of` will report it.

        A reply served from the response cache is free and is not a call: its reserved
        call is given back, so a run answered from the cache never reaches
        ``max_llm_calls`` while its usage says it made no calls.
        """
        if result.cached:
            self.llm_calls -= 1
        self.tokens += result.total_tokens
        self.cost += result.cost

    def restore(self, steps: Sequence[Step]) -> None:
        """Count a resumed run's earlier steps against its budgets, as if it never stopped."""
        paid = [s for s in steps if s.get("kind") == "llm" and not s.get("cached")]
        self.llm_calls = len(paid)
        self.tokens = sum(s.get("prompt_tokens", 0) + s.get("completion_tokens", 0) for s in paid)
        self.cost = sum(s.get("cost", 0.0) for s in paid)
        self.tool_calls = sum(1 for s in steps if s.get("kind") == "tool"
                              and (s.get("parsed") or {}).get("call_id") is not None)

    def count_tool_calls(self, n: int) -> None:
        """Reserve ``n`` tool calls, or stop the run if that would pass ``max_tool_calls``."""
        limit = self.team.limits.max_tool_calls
        if self.tool_calls + n > limit:
            raise BudgetExceeded(f"max_tool_calls ({limit}) reached: the model asked for "
                                 f"{n} more after {self.tool_calls}")
        self.tool_calls += n

    async def aclose(self) -> None:
        """Release what the run opened for its tools (MCP server connections); the
        context stays usable (a later tool call connects again)."""
        if self.toolbox is not None:
            box, self.toolbox = self.toolbox, None
            await box.aclose()

    async def __aenter__(self) -> RunContext:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        """``async with team.context() as ctx:``: its MCP connections closed at the end."""
        await self.aclose()

    def rewind(self) -> None:
        """Before a paused node runs again in this process: its calls and steps get the
        same keys as the first time, so the journal answers them and the ledger keeps one."""
        self._seen.clear()

    def _journal_key(self, *parts: Any, messages: Sequence[dict[str, str]] = ()) -> str | None:
        """A key that is the same when the same LangGraph task runs again after a resume.

        It names the task (its checkpoint namespace: node and task id, which LangGraph
        derives from the checkpoint, so a re-run task has the same one), what is asked,
        and how many identical asks came before it within that task.
        """
        from concilium.memory.journal import call_key

        scope = _task_scope()
        if scope is None:
            return None
        base = call_key(self.run_id, scope, *parts, messages=messages)
        nth = self._seen[base] = self._seen.get(base, -1) + 1
        return call_key(base, nth)

    def memory_vars(self, node: str, kind: str,
                    lessons: list[str] | None = None) -> dict[str, list[str]]:
        """The ``lessons`` and ``behaviors`` prompt variables of role instance ``node``."""
        if self.memory_view is None:
            return {"lessons": list(lessons or []), "behaviors": []}
        return self.memory_view.vars_for(node, kind, lessons)

    # ---------------------------------------------------------------- ledger

    def step(
        self,
        *,
        node: str,
        role: str,
        round: int,
        messages: Sequence[dict[str, Any]] = (),
        result: ChatResult | None = None,
        output: str = "",
        parsed: dict[str, Any] | None = None,
        answer: str | None = None,
        previous: str | None = None,
        revision: bool = False,
        tool: str = "tool",
        latency_ms: float = 0.0,
    ) -> Step:
        """Build a ledger step, publish it, and return it for the node's state update.

        A step without a model ``result`` is a tool call named ``tool``. For a
        ``revision`` (a refiner's or debater's new answer), ``previous`` is the answer
        before it: the step records whether the answer changed and, with a reference,
        which way it flipped (right->wrong or wrong->right).
        """
        for pending in getattr(result, "exchange", ()):  # the tool loop's calls come first
            self.step(node=node, role=role, round=round, **pending)
        messages = getattr(result, "conversation", None) or messages  # with tool results
        secrets = secret_values()  # the ledger never holds a key, whatever the task says
        text = result.text if result is not None else output
        # The same step of a task that runs again after a resume gets the same id, so
        # the ledger stores it once.
        uid = self._journal_key("step", node, role, round, tool if result is None else "llm",
                                text, answer)
        step: Step = {
            "id": uid[:32] if uid else uuid.uuid4().hex[:12],
            "node": node,
            "role": role,
            "kind": ("human" if "human" in (tool, result.model if result else None)
                     else "llm" if result is not None else "tool"),
            "model": result.model if result is not None else tool,
            "round": round,
            "messages": redact_obj(list(messages), secrets),
            "output": redact(text, secrets),
            "parsed": redact_obj(parsed or {}, secrets),
            "prompt_tokens": result.prompt_tokens if result else 0,
            "completion_tokens": result.completion_tokens if result else 0,
            "cost": result.cost if result else 0.0,
            "latency_ms": result.latency_ms if result else latency_ms,
            "attempts": result.attempts if result else 1,
            "fallback_used": result.fallback_used if result else False,
            "cached": result.cached if result else False,
            "replayed": result.replayed if result else False,
            "answer": answer,
            "answer_changed": None,
            "flip": None,
            "at": time.time(),
        }
        if self.memory_view is not None and result is not None:
            step["behaviors"] = self.memory_view.seen(messages)
        if revision:
            step["answer_changed"] = not self.same(previous, answer)
            step["flip"] = self.flip(previous, answer)
        if result is None:
            tracing.tool_step(dict(step))
        self.publish(step)
        return step

    def publish(self, step: Step) -> None:
        if self.on_step is not None:
            self.on_step(step)
        with contextlib.suppress(Exception):  # outside a graph run there is no stream
            from langgraph.config import get_stream_writer

            get_stream_writer()({"type": "step", "step": step})

    # ---------------------------------------------------------------- answers

    def same(self, a: str | None, b: str | None) -> bool:
        from concilium.agents.answers import same

        if a is None and b is None:
            return True
        return same(a, b, self.team.answer.format, self.team.answer.tolerance)

    def correct(self, answer: str | None) -> bool | None:
        """Whether ``answer`` matches the reference; ``None`` when no reference is known."""
        if self.reference is None:
            return None
        from concilium.agents.answers import normalize

        return self.same(answer, normalize(self.reference, self.team.answer.format))

    def flip(self, before: str | None, after: str | None) -> str | None:
        was, now = self.correct(before), self.correct(after)
        if was is None or was == now:
            return None
        return "wrong->right" if now else "right->wrong"


def _response_format(model: str, kind: str, schema: dict[str, Any] | None,
                     ) -> dict[str, Any] | None:
    """A strict JSON-schema ``response_format`` for ``model``, or ``None`` where unsupported."""
    from concilium.agents.llm import supports_json_schema

    if schema is None or not supports_json_schema(model):
        return None
    return {"type": "json_schema",
            "json_schema": {"name": kind, "schema": schema, "strict": True}}


def _key(name: str | None, role: str | None) -> str | None:
    """The value of the environment variable ``name``; a missing one stops the run."""
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"role {role}: api_key_env names {name}, which is not set in the "
                          f"environment; export {name}=<the key>")
    return value


def _task_scope() -> str | None:
    """The running LangGraph task's checkpoint namespace (``node:task_id``), if in one."""
    try:
        from langgraph.config import get_config

        config = get_config()
    except (RuntimeError, ImportError):
        return None
    scope = (config.get("configurable") or {}).get("checkpoint_ns") or (
        config.get("metadata") or {}).get("langgraph_checkpoint_ns")
    return str(scope) if scope else None
