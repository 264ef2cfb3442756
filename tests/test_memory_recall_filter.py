"""Recall filters by namespace and checked outcome in SQL, before it keeps the best few.

A store shared by many teams: 100,000 lessons that all match a task equally well, of
which 3 are in the namespace asked for (and, in a big namespace, 3 are the only checked
ones). Filtering after ``LIMIT`` let the others' lessons push those out; each recall
must find exactly them, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from typing import Any

from memory_fixtures import db_url, memory  # noqa: F401
from sqlalchemy import insert

from concilium.memory.models import Reflection
from concilium.memory.store import Memory, _count_terms, _prepare

TOTAL = 100_000
TASK = "A shop sells pencils at 17 cents each. How much do 24 pencils cost?"
ASKED = "A store sells pencils at 18 cents each. How much do 25 pencils cost in total?"


def lesson(i: int, namespace: str, verified_by: str | None) -> dict[str, Any]:
    return {"lesson": f"Multiply the unit price by the count first (case {i}).", "task": TASK,
            "namespace": namespace, "outcome": "failure", "verified_by": verified_by,
            "uid": f"bulk-{i}"}


def fill(store: Memory, first: int, last: int) -> None:
    """Unchecked lessons of namespace ``big``, as ``remember_many`` stores them, but fast.

    One prepared row copied with its own uid and text, in one executemany, so the
    test's time goes to the store and recall rather than to preparing 100k lessons
    one by one in Python.
    """
    row = _prepare(lesson(first, "big", None), [])
    rows = [{**row, "uid": f"bulk-{i}", "lesson": f"Multiply the unit price by the count "
             f"first (case {i}).", "use_count": 0, "success_count": 0, "failure_count": 0}
            for i in range(first, last)]
    with store.db.write() as session:
        session.execute(insert(Reflection), rows)
        _count_terms(session, store.db.dialect, [row["terms"]] * len(rows), +1)


def test_a_small_namespace_is_recalled_among_100k_others(memory: Memory) -> None:  # noqa: F811
    start = time.perf_counter()
    # The few lessons asked for are the oldest: ties in score go to the newest.
    small = memory.remember_many([lesson(i, "small", "ground_truth") for i in range(3)])
    checked = memory.remember_many([lesson(i, "big", "tool") for i in range(3, 6)])
    fill(memory, 6, TOTAL)
    stored = time.perf_counter() - start
    assert memory.count() == TOTAL

    start = time.perf_counter()
    found = memory.recall(ASKED, namespace="small", k=5)
    assert sorted(x.id for x in found) == sorted(small)
    found = memory.recall(ASKED, namespace="big", k=5)  # checked only, by default
    assert sorted(x.id for x in found) == sorted(checked)
    assert all(x.checked for x in memory.search(ASKED, verified_only=True, limit=10))
    assert len(memory.search(ASKED, verified_only=True, limit=10)) == 6
    assert len(memory.recall(ASKED, namespace="big", k=5, verified_only=False)) == 5
    recalled = time.perf_counter() - start
    print(f"{memory.db.dialect}: stored {TOTAL} lessons in {stored:.1f} s, "
          f"5 recalls in {recalled * 1000:.0f} ms")
