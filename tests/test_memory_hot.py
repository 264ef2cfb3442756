"""The namespace hot set (memory/hot.py): recall answers in Redis, invalidated by any write.

Two :class:`Memory` objects with their own Redis clients stand for two processes over
one SQLite file and one Redis server of the test's own (so it can be stopped).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from redis_server import RedisServer, redis_server  # noqa: F401 - a fixture

from concilium.memory.db import open_database
from concilium.memory.hot import recall_key
from concilium.memory.redis_layer import RedisLayer, RedisUnavailableWarning
from concilium.memory.store import Memory
from concilium.memory.usefulness import quarantine, restore

TASK = "How much do 24 pencils cost at 17 cents each, plus a 3 cent bag?"


def _pair(tmp_path: Path, url: str) -> tuple[Memory, Memory]:
    db = f"sqlite:///{(tmp_path / 'hot.db').as_posix()}"
    return (
        Memory(open_database(db), RedisLayer(url, "hot-test:")),
        Memory(open_database(db), RedisLayer(url, "hot-test:")),
    )


def _remember(memory: Memory, lesson: str) -> int:
    return memory.remember(
        lesson, task=TASK, namespace="shop", outcome="failure", verified_by="tool"
    )


def test_a_write_in_one_process_invalidates_the_hot_set_of_all(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    a, b = _pair(tmp_path, redis_server.url)
    assert b.recall(TASK, namespace="shop") == []
    assert b.recall(TASK, namespace="shop") == []
    assert b.hot is not None and (b.hot.hits, b.hot.misses) == (1, 1)
    first = _remember(a, "Multiply the price by the count first.")
    assert [lesson.id for lesson in b.recall(TASK, namespace="shop")] == [first]
    assert b.hot.misses == 2  # the write bumped the version: not the cached empty answer
    assert [lesson.id for lesson in b.recall(TASK, namespace="shop")] == [first]
    assert b.hot.hits == 2
    quarantine(a, "lesson", first, "test")  # a quarantine is a write too
    assert b.recall(TASK, namespace="shop") == []
    restore(a, "lesson", first)
    assert [lesson.id for lesson in b.recall(TASK, namespace="shop")] == [first]
    a.forget([first])
    assert b.recall(TASK, namespace="shop") == []


def test_an_answer_computed_before_a_write_is_never_served_after_it(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    a, b = _pair(tmp_path, redis_server.url)
    assert b.hot is not None
    key = recall_key(TASK, 3, True)
    version, cached = b.hot.get("shop", key)
    assert version == "0" and cached is None
    _remember(a, "Multiply the price by the count first.")  # lands while b computes
    b.hot.put("shop", version, key, [])  # b's (now stale) answer, filed under version 0
    assert len(b.recall(TASK, namespace="shop")) == 1


def test_with_redis_stopped_recall_reads_sql_and_loses_nothing(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    a, b = _pair(tmp_path, redis_server.url)
    first = _remember(a, "Multiply the price by the count first.")
    assert [lesson.id for lesson in b.recall(TASK, namespace="shop")] == [first]
    redis_server.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RedisUnavailableWarning)
        second = _remember(a, "Add the bag once, not per pencil.")
        assert a.hot is not None and a.hot._unsent == {"shop"}  # kept for when Redis returns
        assert {lesson.id for lesson in b.recall(TASK, namespace="shop")} == {first, second}
    redis_server.start()  # empty, as after a crash
    for memory in (a, b):
        assert memory.redis is not None and memory.redis.reconnect()
    assert {lesson.id for lesson in b.recall(TASK, namespace="shop")} == {first, second}
    a.recall(TASK, namespace="shop")  # a's first call after the outage sends its bump
    assert a.hot._unsent == set()
