"""Runs of ``concilium serve`` execute off the loop that answers HTTP: a run's
synchronous stretch (here a blocking sleep) does not delay the server's loop, and
cancelling a run waits until the run itself has handled the cancel."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from concilium.serve.runs import RunManager

TEAM = SimpleNamespace(name="t", spec=SimpleNamespace(strategy=SimpleNamespace(name="single")))
BLOCK_S = 0.6


async def _max_gap(until: asyncio.Task[Any]) -> float:
    """The longest stretch this loop could not run a 10 ms heartbeat, until ``until`` ends."""
    gap, last = 0.0, time.perf_counter()
    while not until.done():
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    return gap


async def test_a_run_that_blocks_its_loop_does_not_block_the_servers() -> None:
    manager = RunManager()

    async def work(on_step: Any) -> Any:
        on_step({"kind": "llm", "role": "generator"})
        time.sleep(BLOCK_S)  # what a long synchronous stretch of a run does to its loop
        return SimpleNamespace(status="ok", stop_reason=None, answer="4", answer_text="4",
                               correct=None, wall_ms=0.0, error=None, usage=SimpleNamespace(
                                   llm_calls=1, tool_calls=0, prompt_tokens=1,
                                   completion_tokens=1, cost=0.0))

    run = manager.start("r1", TEAM, "task", work)
    assert run.task_handle is not None
    gap = await _max_gap(run.task_handle)
    assert run.status == "ok" and [e["type"] for e in run.events] == [
        "run_start", "step", "run_end"]
    assert gap < BLOCK_S / 2, gap
    await manager.cancel_all()


async def test_cancel_waits_for_the_run_to_handle_it() -> None:
    manager = RunManager()
    seen: list[str] = []

    async def work(on_step: Any) -> Any:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # records its end, like Team.arun
            seen.append("cancelled")
            raise

    run = manager.start("r2", TEAM, "task", work)
    assert run.task_handle is not None
    await asyncio.sleep(0.05)
    run.task_handle.cancel()
    done, _ = await asyncio.wait({run.task_handle}, timeout=30)
    assert done and seen == ["cancelled"]  # the run's own handler ran before the end
    assert run.status == "cancelled" and run.events[-1]["status"] == "cancelled"
    await manager.cancel_all()
