"""The compiled team graph, carrying its run: recall, the ledger, budgets and the timeout.

``Team.compile()`` returns a :class:`CompiledTeam`: LangGraph's own
``CompiledStateGraph`` (invoke, stream, checkpointers, subgraphs) whose
``astream`` - the path ``ainvoke`` and a parent graph calling it as a subgraph
take too - does what ``concilium run`` does around the graph when nobody else
does it:

- a run without ``context=`` gets a fresh :class:`RunContext` of the team (its own
  budgets and run id);
- lessons are recalled into the input's ``lessons`` (unless given), the run's
  ledger row is written as it goes, and its lesson remembered at the end
  (:mod:`concilium.run.memory`);
- the team's ``limits.timeout_s`` bounds the run; a budget or the timeout stops it
  with the ledger row saying so, and the exception (``BudgetExceeded``,
  ``TimeoutError``) reaches the caller as LangGraph code expects;
- the MCP servers the run's tools connected to are closed when the invocation ends
  (its stdio server processes stop), whoever made its context: a service that embeds
  the graph does not collect a server process per request. An invocation abandoned
  half-way (a stream the caller stopped reading) is closed by ``await graph.aclose()``
  (or ``async with graph:``), which closes every invocation still open.

:func:`concilium.run.execute.execute` does all of this itself (durably, with
resume) and marks its context ``managed``, so the graph then only runs its nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from concilium import tracing
from concilium.agents.context import RunContext
from concilium.errors import BudgetExceeded, ModelError
from concilium.records import Status, Step
from concilium.spec import TeamSpec

__all__ = ["compile_team", "new_context"]


def new_context(spec: TeamSpec, **kwargs: Any) -> RunContext:
    """A fresh :class:`RunContext` for a team (the default model from settings)."""
    from concilium.settings import get_settings

    kwargs.setdefault("default_model", get_settings().model)
    return RunContext(team=spec, **kwargs)


def compile_team(
    spec: TeamSpec, checkpointer: Any = None, *, team: Any = None, memory: Any = None, **kwargs: Any
) -> Any:
    """``spec``'s graph compiled into a :class:`CompiledTeam`.

    Args:
        team: the :class:`~concilium.team.Team` it belongs to (kept as ``graph.team``).
        memory: where an unmanaged run recalls, records and remembers (a
            :class:`~concilium.memory.Memory`); ``None``: from settings; ``False``: none.
    """
    from concilium.graphs import build_graph

    graph = build_graph(spec).compile(checkpointer=checkpointer, **kwargs)
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    return _compiled_team_class()(spec=spec, team=team, memory=memory, **attrs)


_SKIP = object()


def _modes(stream_mode: Any) -> tuple[list[str], bool]:
    """The stream modes asked for, and whether one was asked for alone (chunks unwrapped)."""
    if isinstance(stream_mode, str):
        return [stream_mode], True
    return list(stream_mode), False


def _split(
    chunk: Any, modes: list[str], single: bool, subgraphs: bool, v2: bool
) -> tuple[Any, Any]:
    """``(top-level state values or None, what the caller gets or _SKIP)`` of one chunk
    streamed with ``values`` added to the caller's modes."""
    if v2:  # {"type": mode, "ns": (...), "data": ...}
        mode, ns, data = chunk.get("type"), tuple(chunk.get("ns") or ()), chunk.get("data")
        values = data if mode == "values" and not ns else None
        return values, chunk if mode in modes else _SKIP
    if subgraphs:
        ns, mode, data = chunk
        values = data if mode == "values" and not ns else None
        if mode not in modes:
            return values, _SKIP
        return values, (ns, data) if single else chunk
    mode, data = chunk
    values = data if mode == "values" else None
    if mode not in modes:
        return values, _SKIP
    return values, data if single else chunk


@functools.cache
def _compiled_team_class() -> type:
    """The compiled graph's class: LangGraph's, plus the run (made once, lazily: importing
    LangGraph is not free)."""
    from langgraph.graph.state import CompiledStateGraph

    class CompiledTeam(CompiledStateGraph):  # type: ignore[misc, type-arg]
        """A team's ``CompiledStateGraph`` that carries its run (see the module doc).

        LangGraph's ``invoke``/``ainvoke``/``batch`` and a parent graph calling it as a
        subgraph all go through ``stream``/``astream``, so those two fill in the context;
        ``astream`` also does the run's memory, ledger and timeout.
        """

        def __init__(
            self,
            *,
            spec: TeamSpec,
            team: Any = None,
            memory: Any = None,
            open_contexts: dict[int, RunContext] | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(**kwargs)
            # In __dict__, so LangGraph's copy() keeps them (a copy shares open_contexts:
            # closing either closes the invocations of both).
            self.spec = spec
            self.team = team
            self.memory = memory
            self.open_contexts: dict[int, RunContext] = (
                {} if open_contexts is None else open_contexts
            )
            """The contexts of invocations under way that close their tools at the end."""

        def _context(self, context: Any) -> Any:
            return new_context(self.spec) if context is None else context

        async def aclose(self) -> None:
            """Close the MCP connections of every invocation still open (one whose
            stream was abandoned): their stdio servers stop. Finished invocations closed
            theirs already; the graph stays usable."""
            contexts = list(self.open_contexts.values())
            self.open_contexts.clear()
            await asyncio.gather(*(c.aclose() for c in contexts), return_exceptions=True)

        async def __aenter__(self) -> Any:
            return self

        async def __aexit__(self, *exc: Any) -> None:
            await self.aclose()

        async def _closing(self, stream: AsyncIterator[Any], ctx: RunContext
                           ) -> AsyncIterator[Any]:
            """``stream``, then ``ctx``'s MCP connections closed (however it ends)."""
            self.open_contexts[id(ctx)] = ctx
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
                self.open_contexts.pop(id(ctx), None)
                await ctx.aclose()

        def stream(
            self, input: Any, config: Any = None, *, context: Any = None, **kwargs: Any
        ) -> Any:
            context = self._context(context)
            return super().stream(
                input, tracing.with_tracing(config, context), context=context, **kwargs
            )

        def astream(
            self, input: Any, config: Any = None, *, context: Any = None, **kwargs: Any
        ) -> Any:
            ctx = self._context(context)
            config = tracing.with_tracing(config, ctx)
            if (
                not isinstance(ctx, RunContext)
                or ctx.managed
                or not isinstance(input, dict)
                or "task" not in input
            ):  # a managed run, a resume, a Command
                stream = super().astream(input, config, context=ctx, **kwargs)
                if isinstance(ctx, RunContext) and not ctx.managed:  # nobody else closes it
                    return self._closing(stream, ctx)
                return stream
            return self._closing(self._carried(input, config, ctx, **kwargs), ctx)

        async def _carried(
            self,
            input: dict[str, Any],
            config: Any,
            ctx: RunContext,
            *,
            stream_mode: Any = None,
            subgraphs: bool = False,
            **kwargs: Any,
        ) -> AsyncIterator[Any]:
            """``astream`` for a run nobody manages: recall, ledger, timeout, lesson."""
            from concilium.run.memory import open_run_memory
            from concilium.run.result import result_of

            spec = self.spec
            task = str(input["task"])
            mem = await open_run_memory(
                spec, ctx, task, lessons=input.get("lessons"), memory=self.memory, record=None
            )
            if mem is not None:
                ctx.memory = mem.memory  # for the memory_search tool
            if mem is not None and input.get("lessons") is None:
                input = {**input, "lessons": mem.lessons}
            steps: list[Step] = []
            given = ctx.on_step

            def collect(step: Step) -> None:
                if mem is not None:
                    mem.step(step)  # the ledger, as the run goes
                steps.append(step)
                if given is not None:
                    given(step)

            ctx.on_step, ctx.managed = collect, True  # a nested call does not record it again
            modes, single = _modes(stream_mode if stream_mode is not None else self.stream_mode)
            inner: Sequence[str] = [*modes, *(["values"] if "values" not in modes else [])]
            v2 = kwargs.get("version") == "v2"
            state: dict[str, Any] = {}
            status: Status = "ok"
            reason = error = None
            stop: BaseException | None = None
            start = time.perf_counter()
            try:
                try:
                    async with asyncio.timeout(spec.limits.timeout_s):
                        async for chunk in super().astream(
                            input,
                            config,
                            context=ctx,
                            stream_mode=list(inner),
                            subgraphs=subgraphs,
                            **kwargs,
                        ):
                            values, out = _split(chunk, modes, single, subgraphs, v2)
                            if isinstance(values, dict):
                                state = values
                            if out is not _SKIP:
                                yield out
                    reason = state.get("stop_reason")
                except BudgetExceeded as exceeded:
                    status, reason, stop = "stopped", f"budget: {exceeded.reason}", exceeded
                except TimeoutError as late:
                    status, reason = "stopped", f"timeout ({spec.limits.timeout_s:g} s)"
                    stop = late
                except ModelError as failure:
                    status, error, stop = "failed", str(failure), failure
                except BaseException as crash:
                    if mem is not None:
                        mem.crashed(crash)
                    raise
                if mem is not None:  # the lesson (per the team's memory policy), the row

                    def build() -> Any:
                        result = result_of(
                            spec, ctx, task, state, steps, status, reason, error, start
                        )
                        result.lessons = list(input.get("lessons") or [])
                        result.remembered = list(mem.stored)
                        return result

                    await mem.reflect(ctx, task, state, build())
                    await mem.finish(ctx, build())  # built after the reflector's step, if any
            finally:
                ctx.on_step, ctx.managed = given, False
            if stop is not None:
                raise stop

    return CompiledTeam
