"""The response cache never blocks the event loop, and a hung Redis costs a call little.

A test-owned redis-server is frozen with SIGSTOP: its connections stay open and
nothing answers, the worst a Redis can do. While a model call waits on the cache,
a ticker on the same event loop must keep ticking; the call must still complete
(the cache skipped after its short timeout) with exactly one warning; and once
Redis answers again the cache serves replies again by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import warnings

import pytest
from redis_server import RedisServer, redis_server  # noqa: F401

from concilium.agents.llm import chat
from concilium.agents.providers import scripted
from concilium.memory.redis_layer import (
    CACHE_TIMEOUT_S,
    RedisCache,
    RedisLayer,
    RedisUnavailableWarning,
)

pytestmark = pytest.mark.redis

ASK = [{"role": "user", "content": "What is 2 + 2?"}]
OTHER = [{"role": "user", "content": "What is 3 + 3?"}]


async def test_a_hung_redis_does_not_block_the_loop_and_the_call_completes(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    layer = RedisLayer(redis_server.url, "t:")
    layer.reconnect_every_s = 0.2
    cache = RedisCache(layer)
    with scripted.use("hung", scripted.Script(default="Answer: 4")) as script:
        first = await chat(ASK, model="scripted/hung", cache=cache)  # fills the cache
        assert (await chat(ASK, model="scripted/hung", cache=cache)).cached
        assert not first.cached and script.count() == 1

        ticks: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        redis_server.pause()
        try:
            task = asyncio.create_task(ticker())
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.monotonic()
                missed = await chat(OTHER, model="scripted/hung", cache=cache)
                skipped = await chat(ASK, model="scripted/hung", cache=cache)
                took = time.monotonic() - start
            done.set()
            await task
        finally:
            redis_server.resume()
        assert missed.text == skipped.text == "Answer: 4"
        assert not missed.cached and not skipped.cached  # the cache was skipped, not waited on
        assert took < 3 * CACHE_TIMEOUT_S + 5, took
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        # A blocking read would stall the loop for the client's whole socket timeout (2 s).
        assert len(ticks) > 10 and max(gaps) < CACHE_TIMEOUT_S, max(gaps)
        outage = [w for w in caught if issubclass(w.category, RedisUnavailableWarning)
                  and f":{redis_server.port}/" in str(w.message)]  # not a stale layer's
        assert len(outage) == 1, [str(w.message) for w in outage]

        # Redis answers again: the cache comes back by itself (polled with a deadline).
        deadline = time.monotonic() + 30
        while not (await chat(ASK, model="scripted/hung", cache=cache)).cached:
            assert time.monotonic() < deadline, "the cache never came back"
            await asyncio.sleep(0.05)
    assert layer.available and layer.warnings == 1
