"""The one function that runs a team: plain, durable or resumed, with budgets and a timeout.

:func:`execute` is what ``Team.arun`` / ``Team.aresume``, the CLI, the service and the
Ray workers all end in. It opens the run's memory (:mod:`concilium.run.memory`:
recall, the ledger, the response cache), makes the run durable (a LangGraph
checkpoint after every step, thread id = run id, plus a journal of completed model
calls, :mod:`concilium.run.checkpoints`), streams the compiled graph
(:mod:`concilium.run.graph`) under the team's budgets and timeout, and returns a
:class:`~concilium.records.RunResult`. :func:`resume_run` finishes a killed run
from its checkpoint without paying for any call twice.

Data walks one way: the spec comes in, the graph runs, a record goes out; memory
is told what happened and never calls back up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from concilium.agents.context import RunContext
from concilium.errors import (
    BudgetExceeded,
    ConfigError,
    ModelError,
    StoppedByPerson,
    TeamFileError,
)
from concilium.pauses import Ask, answering, ask_person, needs_person, pending_of
from concilium.records import RunResult, Status, Step
from concilium.run.graph import compile_team, new_context
from concilium.spec import TeamSpec, locate

if TYPE_CHECKING:
    from concilium.memory.backend import MemoryBackend as Memory
    from concilium.run.memory import RunMemory

__all__ = ["RunFailed", "RunNotResumable", "check_models", "execute", "pending_questions",
           "recursion_limit", "resume_run"]


class RunFailed(ModelError):
    """A model failed after retries and fallbacks; ``result`` holds what the run had done."""

    def __init__(self, message: str, result: RunResult) -> None:
        super().__init__(message)
        self.result = result


class RunNotResumable(ConfigError):
    """The run cannot be resumed: no checkpoint of it exists (or it already finished)."""


def check_models(spec: TeamSpec, source: str | None = None) -> None:
    """Refuse a model string litellm cannot route, or a key variable that is not set,
    naming the file, line and field.

    Raises:
        TeamFileError: a role, fallback or default model has an unknown provider, or an
            ``api_key_env`` names a variable the environment does not have.
    """
    from concilium.agents.llm import unknown_provider
    from concilium.settings import get_settings

    default = spec.model or get_settings().model
    fields: list[tuple[tuple[Any, ...], str]] = [
        (("model",) if spec.model else ("CONCILIUM_MODEL",), default)
    ]
    for key, role in spec.roles.items():
        fields.append((("roles", key, "model"), role.model or default))
        fields += [(("roles", key, "fallbacks", i), m if isinstance(m, str) else m.model)
                   for i, m in enumerate(role.fallbacks)]
    for loc, model in fields:
        problem = unknown_provider(model)
        if problem is not None:
            raise TeamFileError(source or "<team>", problem, line=locate(source, loc),
                                field=".".join(map(str, loc)))
    for loc, whose, name in spec.key_envs():  # before any call is paid for
        if not os.environ.get(name):
            raise TeamFileError(source or "<team>", f"{name} is not set in the "
                                f"environment (the API key of {whose}); export "
                                f"{name}=<the key>", line=locate(source, loc),
                                field=".".join(map(str, loc)))


def recursion_limit(spec: TeamSpec) -> int:
    """A backstop well above what the team's own limits allow (loops stop themselves)."""
    return 20 + 4 * spec.limits.max_llm_calls


async def execute(
    spec: TeamSpec,
    run: dict[str, Any],
    *,
    run_id: str,
    source: str | None = None,
    graph: Any = None,
    on_step: Callable[[Step], None] | None = None,
    memory: Memory | bool | None = None,
    record: bool | None = None,
    durable: bool | None = None,
    checkpointer: Any = None,
    resume: bool = False,
    own_saver: bool = False,
    answer: str | None = None,
    ask: Ask | None = None,
    question: str | None = None,
    on_delta: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run team ``spec`` on ``run`` (its task, reference, seed, lessons, tests) to the end.

    Args:
        run: how the run starts: ``task``, ``reference``, ``seed``, ``lessons``,
            ``tests``, ``reveal_reference`` (ignored on resume: read from the checkpoint).
        source: the team file, named in errors.
        graph: the team's compiled graph without a saver (compiled here if ``None``);
            a caller running a team many times passes the same one.
        resume: finish run ``run_id`` from its last checkpoint.
        own_saver: ``checkpointer`` was opened (and the run claimed) for this run by
            the caller, so a finished run's checkpoints are dropped as with ours.
        answer: a person's reply to the paused run's first pending question (or to
            ``question``, its id), on resume.
        ask: puts a question to a person and returns the reply, so a run that needs one
            goes on at once; without it the run ends ``paused``.
        on_delta: called with each piece of a model's reply as it is generated.

    See :meth:`concilium.team.Team.arun` for the others.
    """
    check_models(spec, source)
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
            from concilium.run.checkpoints import claim_run, open_checkpointer

            saver = await stack.enter_async_context(open_checkpointer(url))
            # Ours: no second process may run (or resume) this run meanwhile.
            await stack.enter_async_context(claim_run(run_id, saver, url))
        if saver is None and needs_person(spec):  # a pause needs a checkpointer
            from langgraph.checkpoint.memory import InMemorySaver

            saver = InMemorySaver()
        config: dict[str, Any] = {"recursion_limit": recursion_limit(spec)}
        if graph is None:
            graph = compile_team(spec)
        if saver is not None:  # a cheap copy (compiling costs ~5 ms, a copy ~0.1 ms)
            graph = graph.copy(update={"checkpointer": saver})
            config["configurable"] = {"thread_id": run_id}
        saved: dict[str, Any] = {}
        if resume:
            saved = await _saved_run(graph, config, run_id)
            run = saved["run"]
        ctx = new_context(spec, run_id=run_id, reference=run["reference"], seed=run["seed"],
                          reveal_reference=run.get("reveal_reference", True),
                          on_step=collect, on_delta=on_delta, managed=True)
        stack.push_async_callback(ctx.aclose)  # the tools' MCP servers, if any
        if resume:
            ctx.restore(saved["values"].get("steps") or [])
        # Memory: recall lessons, start (or reopen) the ledger row, use the response cache.
        from concilium.run.memory import open_run_memory

        mem = await open_run_memory(spec, ctx, run["task"], lessons=run["lessons"],
                                    memory=memory, record=record, resume=resume,
                                    behaviors=run.get("behaviors"))
        ctx.memory = mem.memory if mem is not None else None  # for memory_search
        if mem is not None:  # issue 13: a resumed run reads the same behaviors
            run["behaviors"] = [b.to_json() for b in mem.behaviors]
        lessons = run["lessons"]
        if mem is not None and lessons is None:
            lessons = mem.lessons
        if saver is not None and mem is not None:
            ctx.journal = mem.memory.journal(run_id)
            if resume:
                await asyncio.to_thread(ctx.journal.load)
                mem.restore(saved["values"].get("steps") or [])
        if saver is not None:  # on every checkpoint (LangGraph keeps strings, not dicts)
            config["metadata"] = {"concilium_run": json.dumps(
                {**run, "lessons": list(lessons or []), "team": saved_spec(spec, source)})}
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
        state, status, reason, error, start = await _drive(spec, graph, first, ctx, config,
                                                           mem)
        pending = pending_of(await graph.aget_state(config)) if saver is not None else []
        while pending and status == "ok" and ask is not None:  # a person at hand
            reply = await ask_person(ask, pending[0])
            if reply is None:  # not now: the run stays paused
                break
            ctx.restore((await graph.aget_state(config)).values.get("steps") or [])
            ctx.rewind()  # the node asking runs again: its calls come from the journal
            state, status, reason, error, _ = await _drive(
                spec, graph, answering(pending[0], reply), ctx, config, mem)
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
        from concilium.run.result import result_of

        result = result_of(spec, ctx, run["task"], state, steps, status, reason, error, start)
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
        if await mem.reflect(ctx, run["task"], state, result):
            result = build()  # with the reflector's step
        result = await mem.finish(ctx, result)
    if status == "failed":
        raise RunFailed(error or "run failed", result)
    return result


async def _drive(
    spec: TeamSpec, graph: Any, first: dict[str, Any] | None, ctx: RunContext,
    config: dict[str, Any], mem: RunMemory | None,
) -> tuple[dict[str, Any], Status, str | None, str | None, float]:
    """Stream the graph to its end (or a pause for a person); a budget or the timeout
    stops it between writes."""
    state: dict[str, Any] = {}
    status: Status = "ok"
    reason: str | None = None
    error: str | None = None
    start = time.perf_counter()
    try:
        async with asyncio.timeout(spec.limits.timeout_s):
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
        status, reason = "stopped", f"timeout ({spec.limits.timeout_s:g} s)"
    except ModelError as failure:
        status, error = "failed", str(failure)
    except BaseException as crash:
        if mem is not None:
            mem.crashed(crash)
        raise
    return state, status, reason, error, start


def saved_spec(spec: TeamSpec, source: str | None) -> dict[str, Any]:
    """What a resume rebuilds the team from: the spec, and the file it came from."""
    return {"spec": spec.model_dump(mode="json", exclude_unset=True), "source": source}


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
    if memory in (None, True, False):
        return None
    db = getattr(memory, "db", None)  # another backend keeps its checkpoints by settings
    return None if db is None else str(db.url)


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
    from concilium.loader import spec_from_dict
    from concilium.run.checkpoints import claim_run, open_checkpointer, thread_config

    url = _memory_url(memory)
    async with open_checkpointer(url) as saver, claim_run(run_id, saver, url):
        meta = _run_metadata(await saver.aget_tuple(thread_config(run_id)))
        if meta is None and await _finished(run_id, memory):
            raise _already_finished(run_id)
        if meta is None:
            raise RunNotResumable(f"no checkpoint of run {run_id!r}: only runs started with "
                                  "checkpoints on (the default) can be resumed")
        saved = meta["team"]
        data = saved["spec"]
        if limits:
            data = {**data, "limits": {**data.get("limits", {}), **limits}}
        spec = spec_from_dict(data)
        if model:
            spec = spec.with_model(model)
        return await execute(spec, {}, run_id=run_id, source=saved.get("source"),
                             on_step=on_step, memory=memory, record=None, durable=True,
                             checkpointer=saver, resume=True, own_saver=True,
                             answer=answer, ask=ask, question=question)


async def pending_questions(run_id: str, *, memory: Memory | bool | None = None,
                            ) -> list[dict[str, Any]]:
    """What paused run ``run_id`` asks a person, read from its checkpoint (``[]``: none).

    Works in any process that shares the run's database, so a restarted service still
    shows the question of a run paused before the restart.
    """
    from concilium.loader import spec_from_dict
    from concilium.run.checkpoints import open_checkpointer, thread_config

    async with open_checkpointer(_memory_url(memory)) as saver:
        meta = _run_metadata(await saver.aget_tuple(thread_config(run_id)))
        if meta is None:
            return []
        graph = compile_team(spec_from_dict(meta["team"]["spec"])).copy(
            update={"checkpointer": saver})
        return pending_of(await graph.aget_state(thread_config(run_id)))
