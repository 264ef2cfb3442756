"""Waiting for an event in a test: poll until it has happened, or fail saying what it was.

A test that needs something to have happened (a call made, a line written, a journal
row committed, a process gone) waits for exactly that, never for a fixed time: a fixed
sleep is a guess that goes wrong on a loaded machine. Every wait has a deadline, long
enough for a busy 2-core machine, and when it passes the test fails naming the event it
waited for (and what a watched process said, if it died first).

Example:
    >>> wait_for(lambda: log.exists(), what="the first call in calls.jsonl", process=proc)
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DEADLINE_S", "peak_in_flight", "wait_for", "wait_for_async"]

T = TypeVar("T")

DEADLINE_S = 300.0
"""How long a test waits for an event by default. Generous: a deadline only ends a test
that failed anyway, and on a loaded 2-core machine starting a Python process that
imports LangGraph and litellm alone can take a minute."""
FIRST_POLL_S = 0.005
LONGEST_POLL_S = 0.1


def wait_for(predicate: Callable[[], T], *, what: str, timeout: float = DEADLINE_S,
             process: subprocess.Popen[Any] | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Args:
        predicate: checks whether the event happened (cheap; called repeatedly).
        what: the event, for the failure message ("6 calls in the journal").
        timeout: seconds before giving up.
        process: a process the event depends on; if it exits first, fail at once
            with its exit code and the end of its stderr.

    Raises:
        AssertionError: the deadline passed, or ``process`` exited, before the event.
    """
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL_S
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"waiting for {what}: the process exited with "
                                 f"{process.returncode} first{_stderr_tail(process)}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; it never happened")
        time.sleep(pause)  # the polling interval, not a guess at when the event happens
        pause = min(pause * 2, LONGEST_POLL_S)


async def wait_for_async(predicate: Callable[[], T], *, what: str,
                         timeout: float = DEADLINE_S,
                         task: asyncio.Future[Any] | None = None) -> T:
    """:func:`wait_for` inside an event loop, letting the loop run between polls.

    ``task``: the run the event depends on; if it ends first, fail at once with how
    it ended.
    """
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL_S
    while True:
        value = predicate()
        if value:
            return value
        if task is not None and task.done():
            how = "was cancelled" if task.cancelled() else (
                f"raised {task.exception()!r}" if task.exception() else "finished")
            raise AssertionError(f"waiting for {what}: the task {how} first")
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; it never happened")
        await asyncio.sleep(pause)
        pause = min(pause * 2, LONGEST_POLL_S)


def _stderr_tail(process: subprocess.Popen[Any]) -> str:
    if process.stderr is None:
        return ""
    try:
        _, err = process.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        return ""
    text = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
    return "; its stderr ends:\n" + text[-2000:] if text.strip() else ""


def peak_in_flight(script: Any, latency_s: float) -> Callable[[], int]:
    """Make a scripted model's calls take ``latency_s``; returns how many were ever in
    flight at once.

    Concurrency as an event, not a stopwatch: "4 calls were answering together" holds
    on any machine, "4 calls of 0.2 s took under 1 s" does not on a busy one.
    """
    import itertools

    started = itertools.count(1)
    peak = 0

    def latency(_call: Any) -> float:
        nonlocal peak
        peak = max(peak, next(started) - script.count())  # count(): calls answered so far
        return latency_s

    script.latency_s = latency
    return lambda: peak
