"""The runs API: start, list, read, follow (SSE), cancel and resume runs; read teams.

A run lives in three places and every endpoint reads the freshest one: this
process's :class:`~concilium.serve.runs.LiveRun` while it runs here; the Redis run
stream while it runs in another process (when Redis is configured); the ledger
(SQL, the truth) always. Ledger reads are blocking SQLAlchemy calls, so they run in
a worker thread and never stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import StreamingResponse

from concilium.agents.context import new_run_id
from concilium.secrets import redact, redact_obj
from concilium.serve.http import ApiError, sse
from concilium.serve.schemas import (
    RUN_ID,
    ErrorResponse,
    ResumeRequest,
    RunDetail,
    RunRequest,
    RunStarted,
    RunSummary,
    TeamInfo,
)

__all__ = ["router"]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad request"},
    404: {"model": ErrorResponse, "description": "No such run or team"},
    409: {"model": ErrorResponse, "description": "The run is not in a state for this"},
}
router = APIRouter(tags=["runs"], responses=ERRORS)

RunId = Annotated[str, Path(pattern=RUN_ID, max_length=64)]
PING_S = 15.0
POLL_S = 0.5
FOLLOW_S = 3600.0


# ---------------------------------------------------------------------------- teams


@router.get("/teams", response_model=list[TeamInfo], summary="The teams this server runs.")
async def teams(request: Request) -> list[TeamInfo]:
    registry = request.app.state.registry
    return [_team_info(registry.entry(n), full=False) for n in registry.names()]


@router.get("/teams/{name}", response_model=TeamInfo, summary="A team's spec and graph.")
async def team(request: Request, name: Annotated[str, Path(max_length=128)]) -> TeamInfo:
    entry = request.app.state.registry.entry(name)
    if entry is None:
        raise ApiError(404, f"no team {name!r}", "not_found_error", param="name")
    return _team_info(entry, full=True)


def _team_info(entry: Any, *, full: bool) -> TeamInfo:
    team = entry.team
    return TeamInfo(
        name=team.name, description=team.spec.description, strategy=team.spec.strategy.name,
        file=entry.path.name,
        spec=redact_obj(team.spec.model_dump(mode="json", exclude_unset=True)) if full else {},
        mermaid=team.mermaid() if full else "")


# ---------------------------------------------------------------------------- runs


@router.post("/runs", response_model=RunStarted, status_code=202,
             summary="Start a run; returns at once with its id.")
async def start_run(request: Request, body: RunRequest) -> RunStarted:
    team = request.app.state.registry.get(body.team)
    if team is None:
        raise ApiError(404, f"no team {body.team!r}; see GET /teams", "not_found_error",
                       param="team")
    run_id = body.run_id or new_run_id()
    manager = request.app.state.runs
    if manager.get(run_id) is not None or await asyncio.to_thread(_ledger_row, run_id):
        raise ApiError(409, f"run id {run_id!r} is taken", param="run_id", code="run_exists")

    async def work(on_step: Any) -> Any:
        return await team.arun(body.task, reference=body.reference, seed=body.seed,
                               run_id=run_id, on_step=on_step)

    manager.start(run_id, team, body.task, work)
    return RunStarted(run_id=run_id, team=team.name, url=f"/runs/{run_id}",
                      events=f"/runs/{run_id}/events")


@router.get("/runs", response_model=list[RunSummary], summary="Recent runs, newest first.")
async def list_runs(
    request: Request,
    team: Annotated[str | None, Query(max_length=128)] = None,
    status: Literal["running", "ok", "stopped", "failed", "cancelled", "paused"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunSummary]:
    manager = request.app.state.runs
    rows = await asyncio.to_thread(_ledger_rows, team, status, limit)
    seen = {row.id for row in rows}
    live = {r.run_id: r for r in manager.live()}
    out = [_live_summary(r) for r in reversed(list(live.values()))
           if r.run_id not in seen and _matches(r, team, status)]
    out += [_merge(_row_summary(row), live.get(row.id)) for row in rows]
    return out[:limit]


@router.get("/runs/{run_id}", response_model=RunDetail,
            summary="A run: its result, steps, and what it asks a person if it is paused.")
async def get_run(request: Request, run_id: RunId) -> RunDetail:
    live = request.app.state.runs.get(run_id)
    row = await asyncio.to_thread(_ledger_row, run_id)
    if row is not None and (live is None or live.done):
        detail = RunDetail(**_row_summary(row).model_dump(),
                           steps=[redact_obj(_step_json(s)) for s in row.steps])
        if row.status == "paused":
            detail.pending = await _pending(run_id, live)
        return _merge(detail, live)
    if live is not None:
        return RunDetail(**_live_summary(live).model_dump(), steps=live.steps,
                         pending=await _pending(run_id, live) if live.status == "paused" else [])
    raise ApiError(404, f"no run {run_id!r}", "not_found_error", param="run_id")


async def _pending(run_id: str, live: Any) -> list[Any]:
    """A paused run's questions: from this process's result, else from its checkpoint
    (a run paused before this server started)."""
    if live is not None and live.result is not None and live.result.status == "paused":
        return redact_obj(list(live.result.pending))
    from concilium.team import pending_questions

    return redact_obj(await pending_questions(run_id))


@router.get("/runs/{run_id}/events", summary="A run's events, live (Server-Sent Events).",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "run_start, each step, run_end: one JSON per "
                             "`data:` line"}})
async def run_events(request: Request, run_id: RunId) -> StreamingResponse:
    live = request.app.state.runs.get(run_id)
    if live is not None:
        events = live.follow()
    else:
        row = await asyncio.to_thread(_ledger_row, run_id)
        if row is None:
            raise ApiError(404, f"no run {run_id!r}", "not_found_error", param="run_id")
        events = _stored_events(row)
    return StreamingResponse(_with_pings(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/runs/{run_id}/cancel", response_model=RunSummary,
             summary="Stop a run running in this process (it stays resumable).")
async def cancel_run(request: Request, run_id: RunId) -> RunSummary:
    live = request.app.state.runs.get(run_id)
    if live is None:
        if await asyncio.to_thread(_ledger_row, run_id) is None:
            raise ApiError(404, f"no run {run_id!r}", "not_found_error", param="run_id")
        raise ApiError(409, f"run {run_id!r} is not running in this server process",
                       code="not_running_here")
    if not live.done and live.task_handle is not None:
        live.task_handle.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(live.task_handle), 30)
    return _live_summary(live)


@router.post("/runs/{run_id}/resume", response_model=RunStarted, status_code=202,
             summary="Answer a paused run's question, or finish a stopped, cancelled or "
                     "crashed run, from its last checkpoint.")
async def resume(request: Request, run_id: RunId,
                 body: Annotated[ResumeRequest | None, Body()] = None) -> RunStarted:
    from concilium import resume_run

    manager = request.app.state.runs
    if manager.busy(run_id):
        raise ApiError(409, f"run {run_id!r} is running", code="run_running")
    row = await asyncio.to_thread(_ledger_row, run_id)
    if row is None:
        raise ApiError(404, f"no run {run_id!r}", "not_found_error", param="run_id")
    team = request.app.state.registry.get(row.team)
    if team is None:
        raise ApiError(409, f"run {run_id!r} is of team {row.team!r}, which this server "
                       "does not serve", code="team_not_served")
    if row.status == "ok":
        raise ApiError(409, f"run {run_id!r} already finished", code="run_finished")
    given = body.model_dump() if body else {}
    answer, question = given.pop("answer", None), given.pop("interrupt_id", None)
    limits = {k: v for k, v in given.items() if v is not None}
    refused: list[BaseException] = []

    async def work(on_step: Any) -> Any:
        from concilium.errors import ConfigError

        try:
            return await resume_run(run_id, on_step=on_step, limits=limits or None,
                                    answer=answer, question=question)
        except ConfigError as error:  # no checkpoint, running elsewhere
            refused.append(error)
            raise

    previous = manager.get(run_id)
    run = manager.start(run_id, team, row.task, work)
    # A run that cannot be resumed fails at once: answer that, not a 202.
    await asyncio.wait({run.task_handle}, timeout=0.5)
    if refused:
        manager.restore(run_id, previous)
        raise ApiError(409, str(refused[0]), code="not_resumable")
    return RunStarted(run_id=run_id, team=team.name, url=f"/runs/{run_id}",
                      events=f"/runs/{run_id}/events")


# ---------------------------------------------------------------------------- helpers


def _ledger_rows(team: str | None, status: str | None, limit: int) -> list[Any]:
    from concilium.memory.ledger import list_runs
    from concilium.memory.store import Memory

    return list_runs(Memory.open(redis_url=False).db, team=team, status=status, limit=limit)


def _ledger_row(run_id: str) -> Any:
    """The ledger's run ``run_id`` (exact id, with its steps), or ``None``."""
    from concilium.memory.ledger import AmbiguousRunId, find_run
    from concilium.memory.store import Memory

    try:
        row = find_run(Memory.open(redis_url=False).db, run_id)
    except AmbiguousRunId:
        return None
    return row if row is not None and row.id == run_id else None


def _matches(run: Any, team: str | None, status: str | None) -> bool:
    return (team is None or run.team == team) and (status is None or run.status == status)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _row_summary(row: Any) -> RunSummary:
    return RunSummary(
        id=row.id, team=row.team, strategy=row.strategy, task=redact(row.task or ""),
        status=row.status, stop_reason=row.stop_reason, answer=row.answer,
        correct=row.correct, llm_calls=row.llm_calls, tool_calls=row.tool_calls,
        prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens,
        cost=row.cost, wall_ms=row.wall_ms, started_at=_iso(row.started_at),
        ended_at=_iso(row.ended_at), error=redact(row.error or "") or None)


def _live_summary(run: Any) -> RunSummary:
    steps = run.steps
    llm = [s for s in steps if s.get("kind") == "llm"]
    result = run.result
    summary = RunSummary(
        id=run.run_id, team=run.team, strategy=run.strategy, task=run.task,
        status=run.status, llm_calls=sum(1 for s in llm if not s.get("cached")),
        tool_calls=len(steps) - len(llm),
        prompt_tokens=sum(s.get("prompt_tokens", 0) for s in llm),
        completion_tokens=sum(s.get("completion_tokens", 0) for s in llm),
        cost=sum(s.get("cost", 0.0) for s in llm),
        wall_ms=(time.time() - run.started) * 1000.0,
        started_at=None, error=run.error, live=not run.done)
    if result is not None:
        summary = summary.model_copy(update={
            "stop_reason": result.stop_reason, "answer": result.answer,
            "correct": result.correct, "wall_ms": result.wall_ms})
    return summary


def _merge(summary: Any, live: Any) -> Any:
    """A ledger summary with what only this process knows (running here, cancelled)."""
    if live is None:
        return summary
    update: dict[str, Any] = {"live": not live.done}
    if live.status == "cancelled" and summary.status in ("failed", "running"):
        update.update(status="cancelled", error=live.error)
    return summary.model_copy(update=update)


def _step_json(step: Any) -> dict[str, Any]:
    keys = ("seq", "uid", "node", "role", "kind", "model", "round", "messages", "output",
            "parsed", "answer", "prompt_tokens", "completion_tokens", "cost", "latency_ms",
            "attempts", "fallback_used", "cached", "answer_changed", "flip")
    data = {key: getattr(step, key) for key in keys}
    data["id"] = data.pop("uid")
    data["at"] = step.at.timestamp() if step.at is not None else None
    return data


async def _stored_events(row: Any) -> AsyncIterator[dict[str, Any]]:
    """A run that is not live here: from its Redis stream if it is running elsewhere and
    Redis is configured, else from the ledger (polled while the run is still running)."""
    yield {"type": "run_start", "id": row.id, "team": row.team, "strategy": row.strategy,
           "task": redact(row.task or ""), "status": row.status}
    seq = 0
    for step in row.steps:
        seq = step.seq
        yield {"type": "step", "seq": step.seq, "step": redact_obj(_step_json(step))}
    if row.status == "running":
        async for event in _follow_elsewhere(row.id, seq):
            yield event
        return
    yield _row_end(row)


def _row_end(row: Any) -> dict[str, Any]:
    summary = _row_summary(row).model_dump()
    return {"type": "run_end", **{k: summary[k] for k in (
        "status", "stop_reason", "answer", "correct", "llm_calls", "tool_calls",
        "prompt_tokens", "completion_tokens", "cost", "wall_ms", "error")}}


async def _follow_elsewhere(run_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
    """Steps after ``after`` of a run another process is running, until it ends."""
    from concilium.memory.store import Memory

    memory = await asyncio.to_thread(Memory.open)
    if memory.redis is not None and memory.redis.available:
        async for event in _redis_events(memory.redis, run_id):
            if event.get("type") == "step" and int(event.get("seq", 0)) <= after:
                continue
            if event.get("type") in ("step", "run_end"):
                yield redact_obj(event)
        return
    deadline = time.monotonic() + FOLLOW_S
    while time.monotonic() < deadline:  # no Redis: the ledger, polled
        await asyncio.sleep(POLL_S)
        row = await asyncio.to_thread(_ledger_row, run_id)
        if row is None:
            return
        for step in row.steps:
            if step.seq > after:
                after = step.seq
                yield {"type": "step", "seq": step.seq, "step": redact_obj(_step_json(step))}
        if row.status != "running":
            yield _row_end(row)
            return


async def _redis_events(layer: Any, run_id: str) -> AsyncIterator[dict[str, Any]]:
    """:meth:`RedisLayer.follow` (blocking) in a worker thread, as an async iterator."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for event in layer.follow(run_id, timeout_s=FOLLOW_S):
                loop.call_soon_threadsafe(queue.put_nowait, event)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    pumping = asyncio.ensure_future(asyncio.to_thread(pump))
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        pumping.cancel()


async def _with_pings(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """SSE lines for ``events``, with a comment every ``PING_S`` so proxies keep it open."""
    iterator = events.__aiter__()
    pending: asyncio.Future[Any] = asyncio.ensure_future(iterator.__anext__())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=PING_S)
            if not done:
                yield ": ping\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            yield sse(event)
            pending = asyncio.ensure_future(iterator.__anext__())
    finally:
        pending.cancel()
