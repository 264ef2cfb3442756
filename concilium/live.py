"""``Team.astream``: a run as a stream of events, while it runs.

The run is :meth:`Team.arun` itself (budgets, memory, ledger, checkpoints); this
module only turns its two callbacks, ``on_step`` and ``on_delta``, into one async
iterator, so a caller writes ``async for event in team.astream(task)`` and sees
each role's text as it is generated, each ledger step as it lands, then the result.

The run is a task of its own: a consumer that stops reading (``break``, an error, a
cancelled request) cancels it, and the run ends as a cancelled run would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concilium.team import Team

__all__ = ["astream"]

_END = object()


async def astream(team: Team, task: str, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """Yield ``delta`` and ``step`` events of a run of ``task``, then its ``result``.

    Args:
        team: the team to run.
        task: the task text.
        **kwargs: :meth:`Team.arun`'s keyword arguments; ``on_step`` and ``on_delta``
            given here are still called, before the event is yielded.

    Raises:
        RunFailed: as :meth:`Team.arun` (after the events before the failure).

    Example:
        ``async for event in team.astream("What is 17 * 24?"): ...``
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    user_step, user_delta = kwargs.pop("on_step", None), kwargs.pop("on_delta", None)

    def put(event: dict[str, Any]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait(event)
        else:  # a tool that ran in a worker thread
            loop.call_soon_threadsafe(queue.put_nowait, event)

    def on_step(step: Any) -> None:
        if user_step is not None:
            user_step(step)
        put({"type": "step", "step": step})

    def on_delta(delta: dict[str, Any]) -> None:
        if user_delta is not None:
            user_delta(delta)
        put(delta)

    async def run() -> Any:
        try:
            return await team.arun(task, on_step=on_step, on_delta=on_delta, **kwargs)
        finally:
            queue.put_nowait(_END)

    runner = asyncio.ensure_future(run())
    try:
        while (event := await queue.get()) is not _END:
            yield event
        yield {"type": "result", "result": await runner}
    finally:
        if not runner.done():
            runner.cancel()
            with contextlib.suppress(BaseException):
                await runner
