"""Runs this server process is running, and their live events.

Every run goes through the public facade (``Team.arun``, ``concilium.resume_run``),
so a served run recalls, records, checkpoints and budgets exactly like a CLI run;
this module only keeps, per live run, the list of its events (start, each step,
end) and wakes whoever is streaming them. A client that goes away does not stop a
run, ``cancel`` does (and a chat stream's own client leaving, see ``chat``).

Runs execute on a second event loop in its own thread (:class:`RunLoop`), not on the
loop that answers HTTP: a run's synchronous stretches (compiling, opening its
checkpointer, which starts a thread and waits for it, parsing, recording) would
otherwise delay every request by their sum at 64 concurrent runs (``py-spy dump``
showed ``/health`` p99 at 0.4-1.6 s). The server's loop keeps, per run, a task that
awaits the run there; cancelling it cancels the run and waits until the run has
recorded its end.

Events have the shape of the Redis run stream's (``concilium runs follow``), so a
viewer reads a run the same way whether it is live here, in another process, or
only in the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from concilium.secrets import redact, redact_obj

__all__ = ["LiveRun", "RunManager", "end_event", "pause_event", "step_event"]

KEEP_FINISHED = 200
"""Finished runs kept in memory (for their events); older ones are read from the ledger."""


def step_event(seq: int, step: dict[str, Any]) -> dict[str, Any]:
    return {"type": "step", "seq": seq, "step": redact_obj(dict(step))}


def pause_event(result: Any) -> dict[str, Any]:
    """The ``interrupt`` event: a run paused for a person, and what it asks them."""
    pending = redact_obj(list(result.pending))
    return {"type": "interrupt", "question": pending[0] if pending else None,
            "pending": pending, "resume": f"/runs/{result.run_id}/resume"}


def end_event(result: Any | None, *, status: str, error: str | None = None) -> dict[str, Any]:
    """The ``run_end`` event of a result (or of a run that raised before it had one)."""
    if result is None:
        return {"type": "run_end", "status": status, "error": redact(error or "")}
    usage = result.usage
    return {"type": "run_end", "status": result.status, "stop_reason": result.stop_reason,
            "answer": result.answer, "answer_text": result.answer_text,
            "correct": result.correct, "llm_calls": usage.llm_calls,
            "tool_calls": usage.tool_calls, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "cost": usage.cost,
            "wall_ms": result.wall_ms, "error": redact(result.error or "") or None}


@dataclass
class LiveRun:
    """One run of this process: its events so far, its task, its outcome."""

    run_id: str
    team: str
    strategy: str
    task: str
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    task_handle: asyncio.Task[Any] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> bool:
        return self.status != "running"

    def add(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [e["step"] for e in self.events if e.get("type") == "step"]

    async def follow(self, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every event from the ``after``-th on, then each new one, until ``run_end``."""
        index = after
        while True:
            waiter = self._changed
            while index < len(self.events):
                event = self.events[index]
                index += 1
                yield event
                if event.get("type") == "run_end":
                    return
            if self.done and index >= len(self.events):
                return
            await waiter.wait()


class RunLoop:
    """An event loop in a daemon thread that runs the teams, off the HTTP loop."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="concilium-runs", daemon=True)
        self._thread.start()

    async def run(self, work: Callable[[], Awaitable[Any]]) -> Any:
        """``await work()`` on the runs loop. Cancelled, it cancels ``work`` there and
        waits for it to end (its ledger row says ``cancelled`` before this returns)."""
        here = asyncio.get_running_loop()
        outcome: asyncio.Future[tuple[bool, Any]] = here.create_future()
        tasks: list[asyncio.Task[Any]] = []

        def settle(task: asyncio.Task[Any]) -> None:
            if outcome.done():
                return
            if task.cancelled():
                outcome.set_result((False, asyncio.CancelledError()))
            elif (error := task.exception()) is not None:
                outcome.set_result((False, error))
            else:
                outcome.set_result((True, task.result()))

        def launch() -> None:
            task = self._loop.create_task(work())
            task.add_done_callback(lambda t: here.call_soon_threadsafe(settle, t))
            tasks.append(task)

        self._loop.call_soon_threadsafe(launch)
        try:
            ok, value = await asyncio.shield(outcome)
        except asyncio.CancelledError:  # launch ran first: callbacks are FIFO
            self._loop.call_soon_threadsafe(lambda: tasks[0].cancel())
            ok, value = await asyncio.shield(outcome)
        if ok:
            return value
        raise value

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class RunManager:
    """Starts runs on the :class:`RunLoop` and keeps their events on the server's loop."""

    def __init__(self) -> None:
        self._runs: dict[str, LiveRun] = {}
        self._runner: RunLoop | None = None

    def get(self, run_id: str) -> LiveRun | None:
        return self._runs.get(run_id)

    def live(self) -> list[LiveRun]:
        return list(self._runs.values())

    def start(
        self, run_id: str, team: Any, task: str,
        work: Callable[[Callable[[dict[str, Any]], None]], Awaitable[Any]],
    ) -> LiveRun:
        """Run ``work(on_step)`` as a task; its steps and outcome become ``run``'s events.

        ``on_step`` also takes a run's ``delta`` events (``Team.arun(on_delta=...)``):
        they join the events as they are, unnumbered (they are not ledger steps).
        """
        loop = asyncio.get_running_loop()
        run = LiveRun(run_id=run_id, team=team.name, strategy=team.spec.strategy.name,
                      task=redact(task))
        run.add({"type": "run_start", "id": run_id, "team": run.team,
                 "strategy": run.strategy, "task": run.task, "status": "running"})
        seq = 0
        thread = threading.get_ident()

        def on_step(step: dict[str, Any]) -> None:
            nonlocal seq
            if threading.get_ident() != thread:  # a tool ran in a worker thread
                loop.call_soon_threadsafe(on_step, step)
                return
            if step.get("type") == "delta":  # a piece of a reply as it comes, not a step
                run.add({**step, "text": redact(str(step.get("text", "")))})
                return
            seq += 1
            run.add(step_event(seq, step))

        async def drive() -> Any:
            from concilium import RunFailed

            try:
                result = await self._runs_loop().run(lambda: work(on_step))
            except RunFailed as failed:
                run.result, run.status, run.error = failed.result, "failed", str(failed)
                run.add(end_event(failed.result, status="failed"))
                raise
            except asyncio.CancelledError:
                from concilium.memory.ledger import flush

                # the run queued its ``cancelled`` row; written before anyone is told
                await asyncio.shield(asyncio.to_thread(flush, 10.0))
                run.status, run.error = "cancelled", "cancelled by a client"
                run.add(end_event(None, status="cancelled", error=run.error))
                raise
            except Exception as error:
                run.status, run.error = "failed", redact(f"{type(error).__name__}: {error}")
                run.add(end_event(None, status="failed", error=run.error))
                raise
            run.result, run.status = result, result.status
            if result.status == "paused":  # announced before the end of this leg
                run.add(pause_event(result))
            run.add(end_event(result, status=result.status))
            return result

        run.task_handle = loop.create_task(drive(), name=f"concilium-run-{run_id}")
        run.task_handle.add_done_callback(_quiet)
        self._runs[run_id] = run
        self._prune()
        return run

    def _runs_loop(self) -> RunLoop:
        if self._runner is None:
            self._runner = RunLoop()
        return self._runner

    def restore(self, run_id: str, previous: LiveRun | None) -> None:
        """Put back what was known of ``run_id`` before a start that was refused."""
        if previous is None:
            self._runs.pop(run_id, None)
        else:
            self._runs[run_id] = previous

    def busy(self, run_id: str) -> bool:
        run = self._runs.get(run_id)
        return run is not None and not run.done

    def _prune(self) -> None:
        finished = [r for r in self._runs.values() if r.done]
        for run in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            self._runs.pop(run.run_id, None)

    async def cancel_all(self) -> None:
        """Cancel every live run (server shutdown); each stays resumable from its checkpoint."""
        handles = [r.task_handle for r in self._runs.values()
                   if r.task_handle is not None and not r.task_handle.done()]
        for handle in handles:
            handle.cancel()
        for handle in handles:
            with contextlib.suppress(BaseException):
                await handle
        if self._runner is not None:
            self._runner.close()
            self._runner = None


def _quiet(task: asyncio.Task[Any]) -> None:
    """Retrieve a run task's exception: it is already an event, not an unhandled error."""
    if not task.cancelled():
        task.exception()
