"""The Redis layer on the real server: response cache, hot set, live events, and outages.

Redis is optional and never the source of truth: when it goes away (a proxy we
stop, or a port that refuses) a run finishes, everything is in SQL, and exactly
one warning says so. The shared Redis server itself is never stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from memory_fixtures import (  # noqa: F401
    REDIS_TEST_URL,
    TcpProxy,
    redis_env,
    redis_prefix,
    redis_proxy,
    sqlite_url,
)
from redis_server import RedisServer, redis_server  # noqa: F401
from waiting import wait_for

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.memory.ledger import Ledger, find_run, list_runs
from concilium.memory.redis_layer import RedisLayer, RedisUnavailableWarning
from concilium.memory.store import Memory
from concilium.settings import get_settings

pytestmark = pytest.mark.redis

TASK = "A shop sells pencils at 17 cents each. How much do 24 pencils cost, plus a 3 cent bag?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"


def gvr(**extra: Any) -> dict[str, Any]:
    return {"name": "redis-gvr", "strategy": "gvr", "limits": {"max_rounds": 1},
            "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}},
            **extra}


async def test_single_example_twice_makes_no_model_call_the_second_time(
    examples: Path, redis_env: str  # noqa: F811
) -> None:
    team = load_team(examples / "single.yaml", model="scripted/cache1")
    assert team.spec.roles["generator"].temperature == 0
    # One reply only: a second real call would raise ScriptExhausted.
    with scripted.use("cache1", scripted.Script({"generator": [RIGHT]})) as script:
        first = await team.arun(TASK)
        second = await team.arun(TASK)
    assert script.count() == 1
    assert first.usage.llm_calls == 1 and second.usage.llm_calls == 0
    assert second.answer == first.answer == "411"
    assert second.steps[0]["cached"] is True and second.usage.total_tokens == 0
    memory = Memory.open()
    assert {r.id for r in list_runs(memory.db)} == {first.run_id, second.run_id}
    one, two = find_run(memory.db, first.run_id), find_run(memory.db, second.run_id)
    assert one is not None and two is not None
    assert (one.from_cache, one.llm_calls, one.cached_calls) == (False, 1, 0)
    assert (two.from_cache, two.llm_calls, two.cached_calls) == (True, 0, 1)
    assert two.steps[0].cached is True and two.steps[0].output == one.steps[0].output


async def test_sampled_replies_are_not_cached_unless_configured(
    redis_env: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    team = load_team({"name": "hot", "strategy": "single",
                      "roles": {"generator": {"temperature": 0.7}}}, model="scripted/cache2")
    with scripted.use("cache2", scripted.Script(default=RIGHT)) as script:
        await team.arun(TASK)
        await team.arun(TASK)
        assert script.count() == 2
        monkeypatch.setenv("CONCILIUM_CACHE_ANY_TEMPERATURE", "true")
        get_settings.cache_clear()
        await team.arun(TASK)
        await team.arun(TASK)
        assert script.count() == 3


async def test_hot_set_holds_the_newest_lessons(redis_env: str) -> None:  # noqa: F811
    memory = Memory.open()
    assert memory.redis is not None and memory.redis.available
    ids = [memory.remember(f"lesson {i} about pencils", task=TASK, namespace="hot",
                           outcome="failure", verified_by="tool") for i in range(3)]
    recent = memory.redis.hot_recent("hot", 10)
    assert recent is not None and [x["id"] for x in recent] == ids[::-1]
    assert [x["id"] for x in memory.recent("hot", 2)] == ids[:0:-1]
    memory.forget([ids[1]])
    assert [x["id"] for x in memory.redis.hot_recent("hot", 10) or []] == [ids[2], ids[0]]
    memory.forget(namespace="hot")
    assert memory.redis.hot_recent("hot", 10) == []


FOLLOWER = """
import sys, time
from concilium.memory.redis_layer import RedisLayer
layer = RedisLayer(sys.argv[1], sys.argv[2])
print("ready", flush=True)
for event in layer.follow(sys.argv[3], timeout_s=60):
    print(f"{time.time():.6f} {event['type']} {event.get('step', {}).get('role', '')}", flush=True)
"""


async def test_another_process_follows_a_run_live(redis_env: str) -> None:  # noqa: F811
    follower = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, REDIS_TEST_URL, redis_env, "followed-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert follower.stdout is not None and follower.stdout.readline().strip() == "ready"
    seen: list[str] = []

    def refiner(call: scripted.ScriptCall) -> str:
        """Answers only once the follower has printed the generator's step: the run is
        still going (it waits for this reply) when the other process sees its step."""
        assert follower.stdout is not None
        while not seen or (seen[-1] and " step " not in seen[-1]):
            seen.append(follower.stdout.readline())  # run_start, then the generator's step
        return RIGHT

    team = load_team(gvr(), model="scripted/follow")
    script = scripted.Script({"generator": [WRONG], "refiner": [refiner]})
    with scripted.use("follow", script):
        await team.arun(TASK, run_id="followed-1")
    # Read on through the same buffered reader: readline() above may already hold the
    # next lines, which communicate() (reading the raw pipe) would never see.
    rest = follower.stdout.read()
    err = follower.stderr.read() if follower.stderr is not None else ""
    follower.wait(timeout=600)
    out = "".join(seen) + rest
    assert follower.returncode == 0, err[-2000:]
    events = [line.split() for line in out.splitlines()]
    kinds = [e[1] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert [e[2] for e in events if e[1] == "step"] == ["generator", "verifier", "refiner",
                                                        "verifier"]
    assert seen[-1].split()[1:] == ["step", "generator"]  # seen while the run was going


async def test_redis_stopped_mid_run_loses_nothing_and_warns_once(
    redis_proxy: TcpProxy, redis_prefix: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("CONCILIUM_REDIS_URL", redis_proxy.url)
    monkeypatch.setenv("CONCILIUM_REDIS_PREFIX", redis_prefix)
    get_settings.cache_clear()

    def refiner(call: scripted.ScriptCall) -> str:
        redis_proxy.stop()  # Redis goes away between the generator's and refiner's calls
        return WRONG

    team = load_team(gvr(memory={"remember": "on_failure"}), model="scripted/outage")
    replies = {"generator": [WRONG], "refiner": [refiner],
               "reflector": ["Reflection: recompute every product before adding the bag."]}
    with (scripted.use("outage", scripted.Script(replies)),
          warnings.catch_warnings(record=True) as caught):
        warnings.simplefilter("always")
        memory = Memory.open()
        assert memory.redis is not None and memory.redis.available
        result = await team.arun(TASK, reference="411", run_id="outage-1")
    outage = [w for w in caught if issubclass(w.category, RedisUnavailableWarning)]
    assert len(outage) == 1, [str(w.message) for w in outage]
    assert "continuing with SQL alone" in str(outage[0].message)
    assert result.status == "ok" and result.correct is False
    assert [s["role"] for s in result.steps] == ["generator", "verifier", "refiner", "verifier",
                                                 "reflector"]
    run = find_run(memory.db, "outage-1")
    assert run is not None and run.status == "ok"
    assert [s.uid for s in run.steps] == [s["id"] for s in result.steps]
    assert len(result.remembered) == 1
    lesson = memory.get(result.remembered[0])
    assert lesson is not None and lesson.run_id == "outage-1"
    assert lesson.lesson == "recompute every product before adding the bag."
    assert not memory.redis.available
    # Later calls keep going on SQL alone without warning again.
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        assert [x["id"] for x in memory.recent(team.spec.name)] == [lesson.id]
    assert not [w for w in again if issubclass(w.category, RedisUnavailableWarning)]


def test_unreachable_redis_at_start_warns_once_and_runs_on_sql(tmp_path: Path) -> None:
    refused = TcpProxy()
    refused.stop()  # a local port that now refuses connections
    code = """
import asyncio
from concilium import load_team
from concilium.agents.providers import scripted
scripted.register("down", scripted.Script(default="17 * 24 = 408. 408 + 3 = 411.\\nAnswer: 411"))
team = load_team({"name": "down", "strategy": "single", "roles": {"generator": {}}},
                 model="scripted/down")
for _ in range(3):
    print(asyncio.run(team.arun("What is 17 * 24 + 3?")).answer)
"""
    env = {**os.environ, "CONCILIUM_HOME": str(tmp_path / "home"),
           "CONCILIUM_REDIS_URL": refused.url}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["411", "411", "411"]
    assert done.stderr.count("RedisUnavailableWarning") == 1, done.stderr
    memory = Memory.open(f"sqlite:///{(tmp_path / 'home' / 'concilium.db').as_posix()}",
                         redis_url=False)
    try:
        assert len(list_runs(memory.db)) == 3
    finally:
        memory.close()


def test_reconnect_after_an_outage(redis_prefix: str) -> None:  # noqa: F811
    proxy = TcpProxy()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        layer = RedisLayer(proxy.url, redis_prefix)
        layer.cache_put("k", "v", 60)
        assert layer.cache_get("k") == "v"
        proxy.stop()
        assert layer.cache_get("k") is None and not layer.available
        assert layer.reconnect() is False  # still down
        assert layer.warnings == 1
    layer.client = RedisLayer(REDIS_TEST_URL, redis_prefix).client
    assert layer.reconnect() is True and layer.cache_get("k") == "v"


def test_cache_and_events_resume_by_themselves_when_redis_returns(
    redis_prefix: str,  # noqa: F811
) -> None:
    proxy = TcpProxy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = RedisLayer(proxy.url, redis_prefix)
        layer.reconnect_every_s = 0.1
        layer.cache_put("k", "v", 60)
        proxy.stop()  # Redis goes away
        assert layer.cache_get("k") is None and not layer.available
        assert layer.publish([("x", {"type": "step"})]) is False
        back = TcpProxy(port=proxy.port)  # ...and comes back on the same address
        try:  # no reconnect() call, no restart: the next calls find Redis again
            wait_for(lambda: layer.cache_get("k") == "v", what="the cache answering again")
            assert layer.available
            assert layer.publish([("x", {"type": "step"})]) is True
            assert layer.client.xlen(layer.key("run", "x")) >= 1
        finally:
            back.stop()
    assert layer.warnings == 1
    assert sum(issubclass(w.category, RedisUnavailableWarning) for w in caught) == 1


async def test_a_run_served_from_the_cache_makes_no_calls_in_budget_or_usage(
    redis_env: str,  # noqa: F811
) -> None:
    from concilium.agents.llm import register_price

    register_price("scripted/cachebudget", input_per_token=0.001, output_per_token=0.002)
    replies = {"generator": [WRONG], "refiner": [RIGHT]}
    with scripted.use("cachebudget", scripted.Script(replies)) as script:
        paid = await load_team(gvr(), model="scripted/cachebudget").arun(TASK)
        assert paid.status == "ok" and paid.usage.llm_calls == 2 and paid.usage.cost > 0
        # The same team with room for one call only: every reply is in the cache, and a
        # cached reply is free and is not a call, so the budget is never reached.
        tight = load_team(gvr(limits={"max_rounds": 1, "max_llm_calls": 1}),
                          model="scripted/cachebudget")
        cached = await tight.arun(TASK)
    assert script.count() == 2  # no model call the second time
    assert cached.status == "ok", cached.stop_reason
    assert cached.answer == paid.answer == "411"
    assert [s["cached"] for s in cached.steps if s["kind"] == "llm"] == [True, True]
    assert (cached.usage.llm_calls, cached.usage.cost, cached.usage.total_tokens) == (0, 0.0, 0)
    run = find_run(Memory.open().db, cached.run_id)
    assert run is not None and (run.llm_calls, run.cached_calls, run.cost) == (0, 2, 0.0)


def test_ledger_events_resume_by_themselves_after_redis_restarts(
    redis_server: RedisServer, sqlite_url: str  # noqa: F811
) -> None:
    import redis

    memory = Memory.open(sqlite_url, redis_url=False)
    reader = redis.Redis.from_url(redis_server.url, decode_responses=True)

    def seqs() -> list[int]:
        """The step numbers on the run's stream (read by a client of the test's own)."""
        try:
            entries = reader.xrange("t:run:restart-1")
        except (redis.RedisError, OSError):
            return []
        return [json.loads(f["data"]).get("seq", 0) for _id, f in entries]

    def step(n: int) -> dict[str, Any]:
        return {"id": f"restart-1-{n}", "node": "generator", "role": "generator",
                "kind": "llm", "model": "scripted/x", "output": f"step {n}"}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = RedisLayer(redis_server.url, "t:")
        layer.reconnect_every_s = 0.1
        recorder = Ledger(memory.db, layer).start(
            run_id="restart-1", team="t", team_hash="h", strategy="single", task="x")
        recorder.step(step(1))
        wait_for(lambda: 1 in seqs(), what="step 1 on the stream")
        redis_server.stop()  # Redis dies mid-run...
        recorder.step(step(2))
        assert recorder.flush()
        assert not layer.available
        redis_server.start()  # ...and comes back, empty
        recorder.step(step(3))
        # Nothing but the ledger's writer touches the layer from here on.
        wait_for(lambda: 3 in seqs(), what="step 3 on the stream after the restart")
    assert seqs() == [2, 3]  # the one published during the outage is sent on reconnect
    assert layer.available and layer.warnings == 1
    assert sum(issubclass(w.category, RedisUnavailableWarning)
               and f":{redis_server.port}/" in str(w.message) for w in caught) == 1
    run = find_run(memory.db, "restart-1")
    assert run is not None and [s.seq for s in run.steps] == [1, 2, 3]  # SQL lost nothing
    reader.close()
