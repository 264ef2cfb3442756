"""A loaded team: the facade over spec, run and graph that scripts and services use.

``Team.compile()`` gives an ordinary ``CompiledStateGraph`` for services that
embed the graph themselves (invoke, stream, checkpointers, subgraphs; pass a
:class:`RunContext` as ``context=``); the graph carries the run, so it recalls
lessons, writes the ledger and keeps the team's budgets and timeout on its own
(:mod:`concilium.run.graph`). ``Team.arun()`` is the path the CLI uses: it runs
:func:`concilium.run.execute.execute`, which adds durability (a LangGraph
checkpoint after every step, thread id = run id, plus a journal of completed
model calls, so ``Team.aresume()`` / :func:`resume_run` finish a killed run
without paying for any call twice) and returns a :class:`RunResult`.

Where things are: the team file's model in :mod:`concilium.spec`, its loader in
:mod:`concilium.loader`, running it in :mod:`concilium.run`, records of a run in
:mod:`concilium.records`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from concilium.agents.context import RunContext
from concilium.loader import load_spec, spec_from_dict
from concilium.records import RunResult, Step, Usage, new_run_id
from concilium.run.execute import (
    RunFailed,
    RunNotResumable,
    check_models,
    execute,
    pending_questions,
    recursion_limit,
    resume_run,
)
from concilium.run.graph import compile_team, new_context
from concilium.spec import TeamSpec

if TYPE_CHECKING:
    from concilium.memory.store import Memory
    from concilium.pauses import Ask

__all__ = ["RunFailed", "RunNotResumable", "RunResult", "Team", "Usage", "load_team",
           "pending_questions", "resume_run"]


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

    def compile(self, checkpointer: Any = None, *, memory: Memory | bool | None = None,
                **kwargs: Any) -> Any:
        """A LangGraph ``CompiledStateGraph``; its context is a :class:`RunContext`.

        A run given no ``context=`` (``graph.ainvoke({"task": ...})``, or the graph
        embedded as a subgraph) gets a fresh :meth:`context` of this team, so an
        embedded graph just works; pass your own to set the run id, reference or
        ``on_step``. Either way the graph carries the run: lessons recalled from
        ``memory`` (default: from settings; ``False``: none), the ledger written, the
        team's budgets and timeout kept (see :mod:`concilium.run.graph`).
        """
        return compile_team(self.spec, checkpointer, team=self, memory=memory, **kwargs)

    def context(self, **kwargs: Any) -> RunContext:
        """A fresh :class:`RunContext` for this team (the default model from settings)."""
        return new_context(self.spec, **kwargs)

    def mermaid(self) -> str:
        """The team's graph as a Mermaid flowchart."""
        return str(self.compile().get_graph().draw_mermaid())

    def check_models(self) -> None:
        """Refuse a model string litellm cannot route, or a key variable that is not set,
        naming the file, line and field (see :func:`concilium.run.execute.check_models`).
        """
        check_models(self.spec, self.source)

    def recursion_limit(self) -> int:
        """A backstop well above what the team's own limits allow (loops stop themselves)."""
        return recursion_limit(self.spec)

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

    async def _execute(self, run: dict[str, Any], *, run_id: str, **kwargs: Any) -> RunResult:
        if self._compiled is None:  # the spec is immutable: compile once per Team
            self._compiled = self.compile()
        return await execute(self.spec, run, run_id=run_id, source=self.source,
                             graph=self._compiled, **kwargs)

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
