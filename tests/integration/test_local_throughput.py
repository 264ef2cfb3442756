"""Overlapping calls to the real local model keep the speed of one call.

llama.cpp here is built with OpenMP: each OS thread that calls into it gets its own
OpenMP thread team, and once more OpenMP threads exist than cores every barrier of
every token waits on a futex (five overlapping calls through ``asyncio.to_thread``
ran at a quarter of the speed of one call). The provider makes every call on the
model's own thread, so overlapping calls from many tasks cost what calls in a row do.

The test checks the mechanism (no new native thread team), which holds on a loaded
machine too; the speed it buys (overlapping calls at >= 0.8x the tokens/s of calls in a
row) is a ratio of timings, so it is measured by ``bench/local_model.py``, side by side
in one run, not asserted here.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading

import pytest

from concilium.agents.llm import RetryPolicy, chat
from concilium.agents.providers import local

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed: pip install -e '.[local]'",
    ),
]

TOKENS = 48


def _native_threads() -> int:
    """OS threads of this process that Python did not start (OpenMP's workers among them)."""
    return len(os.listdir("/proc/self/task")) - len(threading.enumerate())


async def _call(i: int, tokens: int = TOKENS) -> int:
    reply = await chat([{"role": "user", "content": f"Write a long story about a dragon, "
                                                   f"number {i}."}],
                       model="local/smollm2", temperature=0.7, seed=10 + i, max_tokens=tokens,
                       retry=RetryPolicy(attempts=1, timeout_s=1800))  # shared cores
    return reply.completion_tokens


async def test_overlapping_calls_start_no_new_native_threads() -> None:
    """Calls from many tasks enter llama.cpp from one thread: no new OpenMP team appears."""
    await asyncio.to_thread(local.warm)
    await _call(0, 4)
    before = _native_threads()
    await asyncio.gather(*(_call(i, 4) for i in range(6)))
    assert _native_threads() == before
