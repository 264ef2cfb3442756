"""The call journal: a durable run's completed model calls, so a resume never repeats one.

LangGraph's checkpointer saves a run between supersteps; a node that was running
when the process died runs again on resume. Every model call it had finished is
in this journal (written before its reply was used), keyed by :func:`call_key`,
and is answered from here instead of the model: the resumed run pays nothing
twice and sees exactly the replies the first attempt saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from concilium.memory.db import driver_sql, driver_values, insert_once, thread_lock

if TYPE_CHECKING:
    from concilium.memory.db import Database

__all__ = ["CallJournal", "call_key"]


def call_key(*parts: Any, messages: Sequence[dict[str, Any]] = ()) -> str:
    """A stable key for one call: the same task asking the same thing gets the same key."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode("utf-8"))
        digest.update(b"\x1f")
    digest.update(json.dumps(list(messages), sort_keys=True, ensure_ascii=False).encode("utf-8")
                  if messages else b"[]")  # a step's key has none: the same bytes, no dump
    return digest.hexdigest()[:40]


class CallJournal:
    """The completed calls of one run: loaded once at resume, appended to as calls finish."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id
        self.known: dict[str, dict[str, Any]] = {}

    def load(self) -> int:
        """Read the run's journal (a resume); returns how many calls it holds."""
        sql = driver_sql("SELECT key, result FROM calls WHERE run_id = :run_id", self.db.dialect)
        with self.db.engine.connect() as conn:
            rows = conn.exec_driver_sql(sql, {"run_id": self.run_id}).fetchall()
        for key, result in rows:
            self.known[key] = json.loads(result) if isinstance(result, str) else dict(result)
        return len(rows)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.known.get(key)

    def put_now(self, key: str, result: dict[str, Any]) -> bool:
        """Commit one call's result right here if that takes no waiting (SQLite, its write
        lock free): ``True`` if done; ``False``: call :meth:`put` off the event loop."""
        import sqlite3

        from concilium.memory.db import is_busy
        from concilium.memory.models import utcnow

        with self.db.quick_write() as conn:
            if conn is None:
                return False
            row = driver_values({"run_id": self.run_id, "key": key, "at": utcnow(),
                           "result": result}, "sqlite")
            try:
                conn.execute("INSERT OR IGNORE INTO calls (run_id, key, result, at) "
                             "VALUES (:run_id, :key, :result, :at)", row)
            except sqlite3.OperationalError as error:
                if is_busy(error):
                    return False
                raise
        self.known[key] = result
        return True

    def put(self, key: str, result: dict[str, Any]) -> None:
        """Commit one call's result (blocking; the caller runs it off the event loop)."""
        from concilium.memory.models import utcnow

        self.known[key] = result
        dialect = self.db.dialect
        row = driver_values({"run_id": self.run_id, "key": key, "at": utcnow(), "result": result},
                      dialect)
        sql = insert_once("INSERT INTO calls (run_id, key, result, at) "
                          "VALUES (:run_id, :key, :result, :at)", dialect)
        # One writer at a time per database in this process: parallel calls finishing
        # together would otherwise meet in SQLite's busy handler, which sleeps for ms.
        with thread_lock(f"{self.db.url}:journal"), self.db.write_engine.begin() as conn:
            conn.exec_driver_sql(driver_sql(sql, dialect), row)

    def forget_later(self) -> None:
        """Delete the run's journal in the ledger writer's next batch (the run does not wait)."""
        from concilium.memory.ledger import forget_calls

        self.known.clear()
        forget_calls(self.db, self.run_id)

    def forget(self) -> None:
        """Delete the run's journal (it finished: nothing is left to resume)."""
        self.known.clear()
        with self.db.write_engine.begin() as conn:
            conn.exec_driver_sql(driver_sql("DELETE FROM calls WHERE run_id = :run_id",
                                            self.db.dialect), {"run_id": self.run_id})
