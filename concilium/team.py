"""A loaded team: compiles to a LangGraph graph, runs a task, returns a :class:`RunResult`.

``Team.compile()`` gives an ordinary ``CompiledStateGraph`` for services that
embed the graph themselves (invoke, stream, checkpointers, subgraphs; pass a
:class:`RunContext` as ``context=``). ``Team.arun()`` is the convenience path the
CLI uses: it adds budgets, a wall-clock limit and a summary of what it cost, and
makes the run durable: a LangGraph checkpoint after every step (thread id = run
id) plus a journal of completed model calls, so ``Team.aresume()`` /
:func:`resume_run` finish a killed run without paying for any call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from concilium import tracing
from concilium.agents.context import RunContext, Step, new_run_id
from concilium.errors import (
    BudgetExceeded,
    ConfigError,
    ModelError,
    StoppedByPerson,
    TeamFileError,
)
from concilium.pauses import Ask, answering, ask_person, needs_person, pending_of
from concilium.secrets import redact
from concilium.teams import TeamSpec, load_spec, locate, spec_from_dict

if TYPE_CHECKING:
    from concilium.memory.hooks import RunMemory
    from concilium.memory.store import Memory

__all__ = ["RunFailed", "RunNotResumable", "RunResult", "Team", "Usage", "load_team",
           "pending_questions", "resume_run"]



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
    status: Literal["ok", "stopped", "failed", "paused"] = "ok"
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


class RunFailed(ModelError):
    """A model failed after retries and fallbacks; ``result`` holds what the run had done."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


class Team:
    """A validated team, ready to compile or run.

    Example:
        >>> team = load_team("examples/teams/gvr.yaml")
        >>> result = await team.arun("What is 17 * 24 + 3?")
        >>> result.answer, result.usage.total_tokens
    """

    def __init__(self, spec: TeamSpec, *, source: str | None = None) -> None:
        self.spec = spec
        self.source = source
        self._compiled: Any = None

    @property
    def name(self) -> str:
        return self.spec.name

    def with_model(self, model: str | None) -> Team:
        """This team with every role calling ``model`` (no-op for ``None``)."""
        return self if not model else Team(self.spec.with_model(model), source=self.source)

    def graph(self) -> Any:
        """The uncompiled ``StateGraph`` (to add nodes, or to use as a subgraph)."""
        from concilium.graphs import build_graph

        return build_graph(self.spec)

    def compile(self, checkpointer: Any = None, **kwargs: Any) -> Any:
        """A LangGraph ``CompiledStateGraph``; its context is a :class:`RunContext`.

        A run given no ``context=`` (``graph.ainvoke({"task": ...})``, or the graph
        embedded as a subgraph) gets a fresh :meth:`context` of this team, so an
        embedded graph just works; pass your own to set the run id, reference or
        ``on_step``.
        """
        graph = self.graph().compile(checkpointer=checkpointer, **kwargs)
        attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
        return _compiled_team_class()(team=self, **attrs)

    def context(self, **kwargs: Any) -> RunContext:
        """A fresh :class:`RunContext` for this team (the default model from settings)."""
        from concilium.settings import get_settings

        kwargs.setdefault("default_model", get_settings().model)
        return RunContext(team=self.spec, **kwargs)

    def mermaid(self) -> str:
        """The team's graph as a Mermaid flowchart."""
        return str(self.compile().get_graph().draw_mermaid())

    def check_models(self) -> None:
        """Refuse a model string litellm cannot route, or a key variable that is not set,
        naming the file, line and field.

        Raises:
            TeamFileError: a role, fallback or default model has an unknown provider, or an
                ``api_key_env`` names a variable the environment does not have.
        """
        import os

        from concilium.agents.llm import unknown_provider
        from concilium.settings import get_settings

        default = self.spec.model or get_settings().model
        fields: list[tuple[tuple[Any, ...], str]] = [
            (("model",) if self.spec.model else ("CONCILIUM_MODEL",), default)
        ]
        for key, role in self.spec.roles.items():
            fields.append((("roles", key, "model"), role.model or default))
            fields += [(("roles", key, "fallbacks", i), m if isinstance(m, str) else m.model)
                       for i, m in enumerate(role.fallbacks)]
        for loc, model in fields:
            problem = unknown_provider(model)
            if problem is not None:
                source = self.source or "<team>"
                raise TeamFileError(source, problem, line=locate(self.source, loc),
                                    field=".".join(map(str, loc)))
        for loc, whose, name in self.spec.key_envs():  # before any call is paid for
            if not os.environ.get(name):
                raise TeamFileError(self.source or "<team>", f"{name} is not set in the "
                                    f"environment (the API key of {whose}); export "
                                    f"{name}=<the key>", line=locate(self.source, loc),
                                    field=".".join(map(str, loc)))

    def recursion_limit(self) -> int:
        """A backstop well above what the team's own limits allow (loops stop themselves)."""
        return 20 + 4 * self.spec.limits.max_llm_calls

    async def arun(
        self,
        task: str,
        *,
        reference: str | None = None,
        reveal_reference: bool = True,
        lessons: list[str] | None = None,
        run_id: str | None = None,
        seed: int = 0,
        on_step: Callable[[Step], None] | None = None,
        memory: Memory | bool | None = None,
        record: bool | None = None,
        durable: bool | None = None,
        checkpointer: Any = None,
        tests: str | None = None,
        ask: Ask | None = None,
        on_delta: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunResult:
        """Run ``task`` to the end, a budget, or the team's timeout.

        Args:
            task: the task text; it is data for the generator, never configuration.
            reference: a known right answer, to score the run and count flips.
            reveal_reference: let a ``check: reference`` verifier see ``reference``
                (an evaluation passes ``False`` unless asked: its key is not the team's).
            lessons: lessons to put in the generator's and refiner's prompts.
            run_id: an id for the run (default: a new one); also its LangGraph thread id.
            seed: base seed; samples and debaters derive distinct seeds from it.
            on_step: called with each ledger step as it happens (live progress).
            memory: where lessons are recalled from and stored, and the ledger written
                (a :class:`~concilium.memory.Memory`); default: from settings (SQLite
                under ``CONCILIUM_HOME`` unless ``CONCILIUM_DATABASE_URL``); ``False``:
                no memory at all. Lessons are recalled only when ``lessons`` is None.
            record: write this run to the ledger (default ``CONCILIUM_RECORD``, on).
            durable: checkpoint the run after every step and journal every model call,
                so :meth:`aresume` can finish it after a crash without repeating a
                completed call (default ``CONCILIUM_CHECKPOINT``, on; needs memory).
            checkpointer: your own LangGraph saver instead of the default one
                (``checkpoints.db`` beside the ledger, or PostgreSQL).
            tests: test code a ``check: tests`` verifier runs after the answer's code (in
                the sandbox). Kept apart from ``task``: the generator never sees it, so it
                cannot write code that only fits the tests. Default: tests in the task.
            ask: puts a question to a person (a ``role: human``, a node's ``interrupt:``)
                and returns their reply, so the run goes on at once; without it the run
                ends ``paused`` with its questions in ``pending``, resumable with
                ``resume_run(run_id, answer=...)`` (from another process too, if durable).
            on_delta: stream every model call and call this with each piece of text as
                it is generated (a ``delta`` event; see :meth:`astream`).

        Raises:
            TeamFileError: a model string names a provider litellm does not know.
            RunFailed: a model failed after retries and fallbacks.
        """
        from concilium.secrets import mask_known

        # A key of ours pasted into a task never reaches a model, a prompt or a checkpoint.
        run = {"task": mask_known(task), "reference": reference, "seed": seed,
               "lessons": lessons, "tests": tests, "reveal_reference": reveal_reference}
        return await self._execute(run, run_id=run_id or new_run_id(), on_step=on_step,
                                   memory=memory, record=record, durable=durable,
                                   checkpointer=checkpointer, resume=False, ask=ask,
                                   on_delta=on_delta)

    def astream(self, task: str, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        """Run ``task`` as :meth:`arun` does, yielding its events as they happen.

        Events: ``{"type": "delta", "node", "role", "round", "text", ...}`` for each
        piece of a model's reply as it is generated, ``{"type": "step", "step": ...}``
        for each ledger step, and last ``{"type": "result", "result": RunResult}``.
        Takes :meth:`arun`'s keyword arguments. See :mod:`concilium.live`.
        """
        from concilium.live import astream

        return astream(self, task, **kwargs)

    async def aresume(
        self,
        run_id: str,
        *,
        on_step: Callable[[Step], None] | None = None,
        memory: Memory | bool | None = None,
        checkpointer: Any = None,
        answer: str | None = None,
        ask: Ask | None = None,
    ) -> RunResult:
        """Finish run ``run_id`` from its last checkpoint (after a crash, a kill, a timeout,
        or a pause for a person: ``answer`` is their reply to its first pending question).

        Nodes that were running when the run stopped run again; their model calls
        that had completed are answered from the run's call journal, not the model.

        Raises:
            RunNotResumable: the run has no checkpoint (it was not durable, or never
                reached its first step).
        """
        return await self._execute({}, run_id=run_id, on_step=on_step, memory=memory,
                                   record=None, durable=True, checkpointer=checkpointer,
                                   resume=True, answer=answer, ask=ask)

    async def _resume_claimed(self, run_id: str, saver: Any, **kwargs: Any) -> RunResult:
        """:meth:`aresume` with our own saver, opened and claimed by the caller."""
        return await self._execute({}, run_id=run_id, record=None, durable=True,
                                   checkpointer=saver, resume=True, own_saver=True, **kwargs)

    async def _execute(
        self,
        run: dict[str, Any],
        *,
        run_id: str,
        on_step: Callable[[Step], None] | None,
        memory: Memory | bool | None,
        record: bool | None,
        durable: bool | None,
        checkpointer: Any,
        resume: bool,
        own_saver: bool = False,
        answer: str | None = None,
        ask: Ask | None = None,
        question: str | None = None,
        on_delta: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunResult:
        self.check_models()
        from concilium.settings import get_settings

        if durable is None:
            durable = get_settings().checkpoint
        steps: list[Step] = []
        seen: set[str] = set()
        mem: RunMemory | None = None

        def collect(step: Step) -> None:
            if step.get("id") in seen:  # a node run again after a pause: said already
                return
            seen.add(str(step.get("id")))
            if mem is not None:
                mem.step(step)  # the ledger, as the run goes
            steps.append(step)
            if on_step is not None:
                on_step(step)

        async with contextlib.AsyncExitStack() as stack:
            saver = checkpointer
            url = _memory_url(memory)
            if saver is None and durable and memory is not False:
                from concilium.checkpoints import claim_run, open_checkpointer

                saver = await stack.enter_async_context(open_checkpointer(url))
                # Ours: no second process may run (or resume) this run meanwhile.
                await stack.enter_async_context(claim_run(run_id, saver, url))
            if saver is None and needs_person(self.spec):  # a pause needs a checkpointer
                from langgraph.checkpoint.memory import InMemorySaver

                saver = InMemorySaver()
            config: dict[str, Any] = {"recursion_limit": self.recursion_limit()}
            graph = self._graph(saver)
            if saver is not None:
                config["configurable"] = {"thread_id": run_id}
            saved: dict[str, Any] = {}
            if resume:
                saved = await _saved_run(graph, config, run_id)
                run = saved["run"]
            ctx = self.context(run_id=run_id, reference=run["reference"], seed=run["seed"],
                               reveal_reference=run.get("reveal_reference", True),
                               on_step=collect, on_delta=on_delta)
            stack.push_async_callback(ctx.aclose)  # the tools' MCP servers, if any
            if resume:
                ctx.restore(saved["values"].get("steps") or [])
            # Memory: recall lessons, start (or reopen) the ledger row, use the response
            # cache (memory/hooks.py).
            from concilium.memory.hooks import open_run_memory

            mem = await open_run_memory(self.spec, ctx, run["task"], lessons=run["lessons"],
                                        memory=memory, record=record, resume=resume,
                                        behaviors=run.get("behaviors"))
            ctx.memory = mem.memory if mem is not None else None  # for memory_search
            if mem is not None:  # issue 13: a resumed run reads the same behaviors
                run["behaviors"] = [b.to_json() for b in mem.behaviors]
            lessons = run["lessons"]
            if mem is not None and lessons is None:
                lessons = mem.lessons
            if saver is not None and mem is not None:
                from concilium.memory.journal import CallJournal

                ctx.journal = CallJournal(mem.memory.db, run_id)
                if resume:
                    await asyncio.to_thread(ctx.journal.load)
                    mem.restore(saved["values"].get("steps") or [])
            if saver is not None:  # on every checkpoint (LangGraph keeps strings, not dicts)
                config["metadata"] = {"concilium_run": json.dumps(
                    {**run, "lessons": list(lessons or []), "team": self._saved_spec()})}
            first: Any = None if resume else {"task": run["task"],
                                              "lessons": list(lessons or []), "steps": []}
            if first is not None and run.get("tests") is not None:  # the verifier's, not the task's
                first["tests"] = run["tests"]
            pending: list[dict[str, Any]] = []
            if resume and answer is not None:
                pending = pending_of(await graph.aget_state(config))
                chosen = [q for q in pending if question in (None, q["id"])]
                if not chosen:
                    raise RunNotResumable(
                        f"run {run_id!r} is not waiting for an answer" if not pending else
                        f"run {run_id!r} has no pending question {question!r}; its "
                        f"questions: {', '.join(q['id'] for q in pending)}")
                first = answering(chosen[0], answer)
            status: Literal["ok", "stopped", "failed", "paused"]
            state, status, reason, error, start = await self._drive(graph, first, ctx, config,
                                                                    mem)
            pending = pending_of(await graph.aget_state(config)) if saver is not None else []
            while pending and status == "ok" and ask is not None:  # a person at hand
                reply = await ask_person(ask, pending[0])
                if reply is None:  # not now: the run stays paused
                    break
                ctx.restore((await graph.aget_state(config)).values.get("steps") or [])
                ctx.rewind()  # the node asking runs again: its calls come from the journal
                state, status, reason, error, _ = await self._drive(
                    graph, answering(pending[0], reply), ctx, config, mem)
                pending = pending_of(await graph.aget_state(config))
            if pending and status == "ok":
                status, reason = "paused", f"waiting for a person at {pending[0]['node']}"
            if saver is not None:  # the checkpoint holds every step, the resumed ones too
                state = dict((await graph.aget_state(config)).values) or state
                steps = _merge_steps(state.get("steps") or [], steps)
                ours = checkpointer is None or own_saver
                if status == "ok" and ours and not get_settings().keep_checkpoints:
                    await _forget(saver, ctx, run_id)

        def build() -> RunResult:
            result = self._result(ctx, run["task"], state, steps, status, reason, error, start)
            result.lessons = list(lessons or [])
            result.remembered = list(mem.stored) if mem is not None else []
            result.pending = pending
            return result

        result = build()
        if status == "paused":  # no lesson yet: the run has not ended
            if mem is not None and mem.recorder is not None:
                mem.recorder.finish(result)
            return result
        if mem is not None:  # the lesson (per the team's memory policy), then the ledger row
            result = await mem.close(ctx, run["task"], state, result, build)
        if status == "failed":
            raise RunFailed(error or "run failed", result)
        return result

    async def _drive(
        self, graph: Any, first: dict[str, Any] | None, ctx: RunContext,
        config: dict[str, Any], mem: RunMemory | None,
    ) -> tuple[dict[str, Any], Literal["ok", "stopped", "failed"], str | None, str | None,
               float]:
        """Stream the graph to its end (or a pause for a person); a budget or the timeout
        stops it between writes."""
        state: dict[str, Any] = {}
        status: Literal["ok", "stopped", "failed"] = "ok"
        reason: str | None = None
        error: str | None = None
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.spec.limits.timeout_s):
                async for chunk in graph.astream(
                    first, context=ctx, stream_mode="values", config=config,
                ):
                    state = {k: v for k, v in chunk.items() if k != "__interrupt__"}
            reason = state.get("stop_reason")
        except StoppedByPerson as stop:
            status, reason = "stopped", stop.reason
        except BudgetExceeded as stop:
            status, reason = "stopped", f"budget: {stop.reason}"
        except TimeoutError:
            status, reason = "stopped", f"timeout ({self.spec.limits.timeout_s:g} s)"
        except ModelError as failure:
            status, error = "failed", str(failure)
        except BaseException as crash:
            if mem is not None:
                mem.crashed(crash)
            raise
        return state, status, reason, error, start

    def _graph(self, saver: Any) -> Any:
        """The compiled graph, with ``saver``: compiled once per Team, then a cheap copy
        per saver (compiling costs ~5 ms, a copy ~0.1 ms)."""
        if self._compiled is None:  # the spec is immutable: compile once per Team
            self._compiled = self.compile()
        if saver is not None:
            return self._compiled.copy(update={"checkpointer": saver})
        return self._compiled

    def _saved_spec(self) -> dict[str, Any]:
        """What a resume rebuilds this team from: the spec, and the file it came from."""
        return {"spec": self.spec.model_dump(mode="json", exclude_unset=True),
                "source": self.source}

    def run(self, task: str, **kwargs: Any) -> RunResult:
        """Blocking :meth:`arun`, for scripts and notebooks.

        Inside a running event loop (Jupyter, an async caller) ``asyncio.run`` is
        refused, so the run gets its own loop on a worker thread and this call blocks
        until it ends; in async code prefer ``await team.arun(...)``.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(task, **kwargs))
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="concilium-run") as worker:
            return worker.submit(lambda: asyncio.run(self.arun(task, **kwargs))).result()

    def _result(
        self,
        ctx: RunContext,
        task: str,
        state: dict[str, Any],
        steps: list[Step],
        status: Literal["ok", "stopped", "failed", "paused"],
        reason: str | None,
        error: str | None,
        start: float,
    ) -> RunResult:
        answer = state.get("answer") or {}
        value = answer.get("value")
        flips: dict[str, int] = {"changed": 0, "right->wrong": 0, "wrong->right": 0}
        for step in steps:
            if step.get("answer_changed"):
                flips["changed"] += 1
            if step.get("flip"):
                flips[str(step["flip"])] += 1
        return RunResult(
            run_id=ctx.run_id,
            team=self.spec.name,
            strategy=self.spec.strategy.name,
            task=redact(task),
            answer=value,
            answer_text=redact(answer.get("text", "")),
            status=status,
            stop_reason=reason,
            error=error,
            rounds=int(state.get("round", 0) or 0),
            reference=ctx.reference,
            correct=ctx.correct(value),
            flips=flips,
            report=dict(state.get("report") or {}),
            usage=Usage.of(steps),
            wall_ms=(time.perf_counter() - start) * 1000.0,
            steps=[dict(s) for s in steps],
        )


@functools.cache
def _compiled_team_class() -> type:
    """The compiled graph's class: LangGraph's, plus a default context (made once, lazily:
    importing LangGraph is not free)."""
    from langgraph.graph.state import CompiledStateGraph

    class CompiledTeam(CompiledStateGraph):  # type: ignore[misc, type-arg]
        """A team's ``CompiledStateGraph``: a run without ``context=`` gets the team's own.

        LangGraph's ``invoke``/``ainvoke``/``batch`` and a parent graph calling it as a
        subgraph all go through ``stream``/``astream``, so those two fill it in. A fresh
        context per run: its budgets and run id are that run's alone.
        """

        def __init__(self, *, team: Team, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.team = team  # in __dict__, so LangGraph's copy() keeps it

        def _context(self, context: Any) -> Any:
            return self.team.context() if context is None else context

        def stream(self, input: Any, config: Any = None, *, context: Any = None,
                   **kwargs: Any) -> Any:
            context = self._context(context)
            return super().stream(input, tracing.with_tracing(config, context),
                                  context=context, **kwargs)

        def astream(self, input: Any, config: Any = None, *, context: Any = None,
                    **kwargs: Any) -> Any:
            context = self._context(context)
            return super().astream(input, tracing.with_tracing(config, context),
                                   context=context, **kwargs)

    return CompiledTeam


class RunNotResumable(ConfigError):
    """The run cannot be resumed: no checkpoint of it exists (or it already finished)."""


async def _saved_run(graph: Any, config: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The run's last checkpoint: its state values and how it was started."""
    snapshot = await graph.aget_state(config)
    meta = _run_metadata(snapshot)
    if not snapshot.values or meta is None:
        raise RunNotResumable(f"run {run_id!r} has no checkpoint to resume from (was it "
                              "started with checkpoints on, and did it reach its first step?)")
    if not snapshot.next:
        raise _already_finished(run_id)
    return {"values": dict(snapshot.values), "run": meta}


def _already_finished(run_id: str) -> RunNotResumable:
    return RunNotResumable(f"run {run_id!r} already finished; see: concilium runs show "
                           f"{run_id}")


def _memory_url(memory: Memory | bool | None) -> str | None:
    """The database of an explicit :class:`Memory`; ``None``: the one from settings."""
    return None if memory in (None, True, False) else memory.db.url  # type: ignore[union-attr]


def _run_metadata(snapshot: Any) -> dict[str, Any] | None:
    """How the run was started, from its checkpoint's metadata (``None``: not ours)."""
    meta = (getattr(snapshot, "metadata", None) or {}).get("concilium_run")
    try:
        return dict(json.loads(meta)) if isinstance(meta, str) else None
    except (ValueError, TypeError):
        return None


async def _forget(saver: Any, ctx: RunContext, run_id: str) -> None:
    """Drop a finished run's checkpoints and call journal: a run that ended cannot be
    resumed, the ledger keeps every step, and checkpoints hold the whole state after
    every step (they would grow with the square of a run's length)."""
    await saver.adelete_thread(run_id)
    if ctx.journal is not None:
        ctx.journal.forget_later()  # with the ledger's next batch: the run does not wait


def _merge_steps(saved: list[Step], seen: list[Step]) -> list[Step]:
    """The checkpoint's steps with the ones it does not hold, once each, in the order seen.

    A step the checkpoint lacks (a stopped node's; a tool loop's turns and tool calls,
    which no node returns) goes just before the checkpointed step that followed it.
    """
    ids = {s.get("id") for s in saved}
    before: dict[Any, list[Step]] = {}
    pending: list[Step] = []
    for step in seen:
        if step.get("id") in ids:
            before.setdefault(step.get("id"), []).extend(pending)
            pending = []
        else:
            pending.append(step)
    merged: list[Step] = []
    for step in saved:
        merged += before.pop(step.get("id"), [])
        merged.append(step)
    return [*merged, *pending]


async def _finished(run_id: str, memory: Memory | bool | None) -> bool:
    """Whether the ledger says run ``run_id`` ended ``ok`` (its checkpoints are gone)."""
    if memory is False:
        return False
    from concilium.memory.ledger import find_run, flush
    from concilium.memory.store import Memory as MemoryStore

    def status() -> str | None:
        flush(5.0)  # this process's own last run may still be queued
        db = (memory if isinstance(memory, MemoryStore) else MemoryStore.open(
            redis_url=False)).db
        run = find_run(db, run_id)
        return run.status if run is not None else None

    return await asyncio.to_thread(status) == "ok"


async def resume_run(
    run_id: str,
    *,
    on_step: Callable[[Step], None] | None = None,
    memory: Memory | bool | None = None,
    model: str | None = None,
    limits: dict[str, Any] | None = None,
    answer: str | None = None,
    ask: Ask | None = None,
    question: str | None = None,
) -> RunResult:
    """Finish a killed or stopped durable run, rebuilding its team from its checkpoint.

    The team is the one the run started with (its spec is saved in the checkpoint),
    not whatever its YAML file says now; ``limits`` raises (or lowers) its budgets,
    e.g. ``{"max_llm_calls": 40}`` to go on after a budget stop.

    A run paused for a person goes on with ``answer``, their reply to its first pending
    question (``RunResult.pending``; ``question``: the id of another one), or asks
    ``ask`` as :meth:`Team.arun` does.

    Raises:
        RunNotResumable: no checkpoint of ``run_id`` exists, or ``answer`` was given to a
            run that is not waiting for one.
    """
    from concilium.checkpoints import claim_run, open_checkpointer, thread_config

    url = _memory_url(memory)
    async with open_checkpointer(url) as saver, claim_run(run_id, saver, url):
        meta = _run_metadata(await saver.aget_tuple(thread_config(run_id)))
        if meta is None and await _finished(run_id, memory):
            raise _already_finished(run_id)
        if meta is None:
            raise RunNotResumable(f"no checkpoint of run {run_id!r}: only runs started with "
                                  "checkpoints on (the default) can be resumed")
        saved = meta["team"]
        spec = saved["spec"]
        if limits:
            spec = {**spec, "limits": {**spec.get("limits", {}), **limits}}
        team = Team(spec_from_dict(spec), source=saved.get("source")).with_model(model)
        return await team._resume_claimed(run_id, saver, on_step=on_step, memory=memory,
                                          answer=answer, ask=ask, question=question)


def load_team(source: str | Path | dict[str, Any], *, model: str | None = None) -> Team:
    """Load a team from a YAML file path (or an already-parsed dict).

    Args:
        source: path of a team file, or the team as a dict.
        model: run every role on this model instead (like ``--model``).

    Raises:
        TeamFileError: the file is missing or invalid; the message names file, line, field.
    """
    if isinstance(source, dict):
        spec = spec_from_dict(source)
        origin = None
    else:
        spec = load_spec(source)
        origin = str(source)
    return Team(spec, source=origin).with_model(model)


async def pending_questions(run_id: str, *, memory: Memory | bool | None = None,
                            ) -> list[dict[str, Any]]:
    """What paused run ``run_id`` asks a person, read from its checkpoint (``[]``: none).

    Works in any process that shares the run's database, so a restarted service still
    shows the question of a run paused before the restart.
    """
    from concilium.checkpoints import open_checkpointer, thread_config

    async with open_checkpointer(_memory_url(memory)) as saver:
        meta = _run_metadata(await saver.aget_tuple(thread_config(run_id)))
        if meta is None:
            return []
        team = Team(spec_from_dict(meta["team"]["spec"]), source=meta["team"].get("source"))
        return pending_of(await team._graph(saver).aget_state(thread_config(run_id)))
