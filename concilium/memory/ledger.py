"""The run ledger: every run and every step, written while the run goes.

A run's row is inserted when it starts (status ``running``) and completed when
it ends, and each step is queued the moment it happens. One background thread
per process drains the queue: whatever arrived within a few milliseconds goes
into one transaction, so a run never waits on the database (it only enqueues)
and a crashed run still shows the steps it made. After each commit the same
events go to the run's Redis stream, when Redis is configured, so another
process can follow the run live (:meth:`RedisLayer.follow`). While Redis is down
the writer keeps the newest events it could not send (at most ``UNSENT_MAX``) and
tries Redis again on its own every ``reconnect_every_s``, so the streams resume
when Redis returns even if nothing else in the process touches Redis; events may
then arrive twice (a batch cut off mid-way is sent again).

:meth:`RunRecorder.flush` waits until everything queued so far is written;
``Team.arun`` calls it before returning, so a finished run is in SQL.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from concilium.memory.db import driver_sql, insert_once
from concilium.memory.models import RunRow, StepRow, utcnow

if TYPE_CHECKING:
    from concilium.agents.context import Step
    from concilium.memory.db import Database
    from concilium.memory.redis_layer import RedisLayer
    from concilium.team import RunResult

__all__ = ["Ledger", "RunRecorder", "find_run", "flush", "forget_calls", "list_runs",
           "usage_stats"]

log = logging.getLogger(__name__)

LINGER_S = 0.02
"""How long the writer waits for more events before committing a batch (the most a hard
kill can lose)."""
MAX_BATCH = 1000
UNSENT_MAX = 10_000
"""Events kept for Redis while it is down (the oldest are dropped first; SQL has them all)."""
WRITE_ATTEMPTS = 3


class Ledger:
    """Records runs of one database (and publishes their events on Redis, if any)."""

    def __init__(self, db: Database, redis: RedisLayer | None = None) -> None:
        self.db = db
        self.redis = redis

    def start(
        self,
        *,
        run_id: str,
        team: str,
        team_hash: str,
        strategy: str,
        task: str,
        reference: str | None = None,
        namespace: str | None = None,
        recalled: Sequence[int] = (),
    ) -> RunRecorder:
        """Queue the run's row (status ``running``) and return its recorder."""
        recorder = RunRecorder(self, run_id)
        recorder._submit("run_start", {
            "id": run_id, "team": team, "team_hash": team_hash, "strategy": strategy,
            "task": task, "reference": reference, "namespace": namespace,
            "recalled": list(recalled), "status": "running", "started_at": utcnow(),
        })
        return recorder


    def reopen(self, run_id: str) -> RunRecorder | None:
        """A recorder for a resumed run whose row exists (status back to ``running``).

        Blocking (one query); ``None`` when the run has no row yet (it died before the
        writer wrote it), and the caller starts a new one.
        """
        with self.db.engine.connect() as conn:
            seq = conn.exec_driver_sql(
                driver_sql("SELECT (SELECT max(seq) FROM steps WHERE run_id = :id), "
                           "(SELECT count(*) FROM runs WHERE id = :id)", self.db.dialect),
                {"id": run_id}).one()
        if not seq[1]:
            return None
        recorder = RunRecorder(self, run_id)
        recorder._seq = int(seq[0] or 0)
        recorder._submit("run_resume", {"status": "running"})
        return recorder


class RunRecorder:
    """The ledger's handle on one run: ``step()`` as steps happen, ``finish()`` at the end."""

    def __init__(self, ledger: Ledger, run_id: str) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self._seq = 0
        self._lock = threading.Lock()

    def _submit(self, kind: str, data: dict[str, Any]) -> None:
        _writer.submit(_Op(kind, self.ledger.db, self.ledger.redis, self.run_id, data))

    def step(self, step: Step) -> None:
        """Queue one step (cheap: the database write happens on the writer thread)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        self._submit("step", {"seq": seq, "step": dict(step)})

    def event(self, event: dict[str, Any]) -> None:
        """Publish an extra event on the run's stream (e.g. a stored lesson); not in SQL."""
        self._submit("event", dict(event))

    def finish(self, result: RunResult) -> None:
        """Queue the run's outcome and totals."""
        usage = result.usage
        cached = sum(1 for s in result.steps if s.get("kind") == "llm" and s.get("cached"))
        self._submit("run_end", {
            "status": result.status, "stop_reason": result.stop_reason,
            "answer": result.answer, "answer_text": result.answer_text,
            "correct": result.correct, "llm_calls": usage.llm_calls, "cached_calls": cached,
            "from_cache": cached > 0 and usage.llm_calls == 0, "tool_calls": usage.tool_calls,
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cost": usage.cost, "wall_ms": result.wall_ms, "ended_at": utcnow(),
            "error": result.error,
        })

    def used(self, ids: Sequence[int], correct: bool | None, *, behaviors: Sequence[int] = (),
             team: str | None = None, namespace: str | None = None,
             review: bool = False) -> None:
        """Count this run's use of lessons ``ids`` and ``behaviors``, and how the run ended.

        ``review``: then apply the quarantine rule to them (memory/usefulness.py).
        """
        self._submit("use", {"ids": list(ids), "correct": correct, "behaviors": list(behaviors),
                             "team": team, "namespace": namespace, "review": review})

    def fail(self, error: BaseException) -> None:
        """Mark the run failed by an unexpected exception (its steps are already queued);
        ``cancelled`` when it was cancelled (a client or a shutdown: resumable, not broken)."""
        status = "cancelled" if isinstance(error, asyncio.CancelledError) else "failed"
        self._submit("run_end", {"status": status, "ended_at": utcnow(),
                                 "error": f"{type(error).__name__}: {error}"[:4000]})

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        """Wait until everything queued so far is written; ``False`` on timeout."""
        return _writer.flush(timeout_s)


def forget_calls(db: Database, run_id: str) -> None:
    """Queue the deletion of a finished run's call journal (:mod:`concilium.memory.journal`)."""
    _writer.submit(_Op("forget_calls", db, None, run_id))


# ---------------------------------------------------------------------------- the writer


@dataclass
class _Op:
    kind: str  # run_start | step | event | run_end | use | forget_calls | barrier
    db: Database | None = None
    redis: RedisLayer | None = None
    run_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    done: threading.Event | None = None


class _Writer:
    """One thread per process that turns queued ledger events into batched transactions."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0  # ops submitted and not yet written (a hint: no lock needed)
        self._urgent = threading.Event()
        """Set by :meth:`flush`: stop lingering, write now."""
        self._unsent: dict[RedisLayer, deque[tuple[str, dict[str, Any]]]] = {}
        """Events each downed Redis has yet to receive (touched by the writer thread only)."""

    def submit(self, op: _Op) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._loop, name="concilium-ledger",
                                                     daemon=True)
                    self._thread.start()
        self._pending += 1
        self._queue.put(op)

    def flush(self, timeout_s: float | None = 30.0) -> bool:
        if self._thread is None or self._pending <= 0:
            return True
        done = threading.Event()
        self.submit(_Op("barrier", done=done))
        self._urgent.set()
        return done.wait(timeout_s)

    def _loop(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self._retry_in())]
            except queue.Empty:  # idle with events Redis has yet to receive: try it again
                for redis in list(self._unsent):
                    self._publish_safely(redis, [])
                continue
            if batch[0].kind != "barrier":
                # Linger for what comes next without waking up for each of it: a thread
                # woken per event costs the event loop a GIL hand-off each time. A flush
                # ends the wait at once.
                self._urgent.wait(LINGER_S)
            self._urgent.clear()
            while batch[-1].kind != "barrier" and len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:  # the writer must never die: log and go on
                log.exception("ledger writer failed on a batch of %d events", len(batch))
            self._pending -= len(batch)
            for op in batch:
                if op.done is not None:
                    op.done.set()

    def _write(self, batch: list[_Op]) -> None:
        from concilium.secrets import redact_obj, secret_values

        secrets = secret_values()
        groups: dict[int, list[_Op]] = {}
        for op in batch:
            if op.db is not None:
                op.data = redact_obj(op.data, secrets)  # nothing secret reaches SQL or Redis
                groups.setdefault(id(op.db), []).append(op)
        for ops in groups.values():
            db = ops[0].db
            assert db is not None
            sql_ops = [op for op in ops if op.kind != "event"]
            if sql_ops:
                _commit(db, sql_ops)
            redis = ops[0].redis
            if redis is not None:
                self._publish(redis, [(op.run_id, _event(op)) for op in ops
                                      if op.kind not in ("use", "forget_calls")])

    def _retry_in(self) -> float | None:
        """How long the writer may sleep: until the next Redis retry if events wait for one."""
        if not self._unsent:
            return None
        return max(0.01, min(redis.reconnect_every_s for redis in self._unsent))

    def _publish(self, redis: RedisLayer, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Send events after those still waiting for ``redis``; keep them all if it is down.

        Called on every batch, whether or not the layer thinks Redis is up: the layer
        itself decides when a downed Redis is tried again, so the publisher reconnects
        by itself instead of waiting for some other caller to revive the layer.
        """
        unsent = self._unsent.setdefault(redis, deque(maxlen=UNSENT_MAX))
        unsent.extend(events)
        if unsent and not redis.publish(list(unsent)):
            return  # still down: kept for the next try
        del self._unsent[redis]

    def _publish_safely(self, redis: RedisLayer, events: list[tuple[str, dict[str, Any]]]) -> None:
        try:
            self._publish(redis, events)
        except Exception:  # the writer must never die
            log.exception("ledger: publishing to Redis failed")


def _commit(db: Database, ops: list[_Op]) -> None:
    """Write ops in one transaction; on failure retry, then one by one (never lose the rest)."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            _apply(db, ops)
            return
        except DBAPIError as error:
            if not error.connection_invalidated and attempt < WRITE_ATTEMPTS and _transient(error):
                time.sleep(0.05 * attempt)
                continue
            break
        except SQLAlchemyError:
            break
    if len(ops) == 1:
        log.error("ledger: could not write %s of run %s", ops[0].kind, ops[0].run_id,
                  exc_info=True)
        return
    for op in ops:
        _commit(db, [op])


def _transient(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return "locked" in text or "busy" in text or "connection" in text or "deadlock" in text


_RUN_COLUMNS = ("id", "team", "team_hash", "strategy", "namespace", "task", "status",
                "reference", "recalled", "started_at")
_STEP_COLUMNS = ("uid", "run_id", "seq", "node", "role", "kind", "model", "round", "messages",
                 "output", "parsed", "answer", "prompt_tokens", "completion_tokens", "cost",
                 "latency_ms", "attempts", "fallback_used", "cached", "answer_changed", "flip",
                 "at", "behaviors")
_END_COLUMNS = ("status", "stop_reason", "answer", "answer_text", "correct", "llm_calls",
                "cached_calls", "from_cache", "tool_calls", "prompt_tokens",
                "completion_tokens", "cost", "wall_ms", "ended_at", "error")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + c for c in columns)})")


_SQL = {
    "run_start": _insert_sql("runs", _RUN_COLUMNS),
    "step": _insert_sql("steps", _STEP_COLUMNS),
    "run_end": "UPDATE runs SET " + ", ".join(f"{c} = :{c}" for c in _END_COLUMNS)
               + " WHERE id = :id",
    "fail": "UPDATE runs SET status = :status, ended_at = :ended_at, error = :error "
            "WHERE id = :id",
    "run_resume": "UPDATE runs SET status = :status, ended_at = NULL, error = NULL, "
                  "stop_reason = NULL WHERE id = :id",
}
# A step has a stable id (a resumed run re-sends the steps of the tasks it re-runs):
# the ledger keeps the first copy.
_STEP_ONCE = {dialect: insert_once(_SQL["step"], dialect) for dialect in ("sqlite", "postgresql")}


def _apply(db: Database, ops: list[_Op]) -> None:
    """One transaction of driver-level ``executemany`` calls (no ORM on the hot path).

    Run rows first, then steps, then run ends, so a batch never breaks the steps'
    foreign key whatever order its runs interleave in.
    """
    dialect = db.dialect
    rows: dict[str, list[dict[str, Any]]] = {"run_start": [], "run_resume": [], "step": [],
                                             "run_end": [], "fail": []}
    uses: list[_Op] = []
    forgotten: list[dict[str, Any]] = []
    for op in ops:
        if op.kind == "run_start":
            rows["run_start"].append(_values(op.data, dialect))
        elif op.kind == "step":
            rows["step"].append(_values(_step_row(op.run_id, op.data["seq"], op.data["step"]),
                                        dialect))
        elif op.kind == "run_resume":
            rows["run_resume"].append({**op.data, "id": op.run_id})
        elif op.kind == "run_end":
            kind = "run_end" if "stop_reason" in op.data else "fail"
            rows[kind].append(_values({**op.data, "id": op.run_id}, dialect))
        elif op.kind == "use":
            uses.append(op)
        elif op.kind == "forget_calls":
            forgotten.append({"run_id": op.run_id})
    with db.write_engine.begin() as conn:
        for kind, params in rows.items():
            if params:
                sql = _STEP_ONCE.get(dialect, _SQL[kind]) if kind == "step" else _SQL[kind]
                conn.exec_driver_sql(driver_sql(sql, dialect), params)
        for op in uses:
            _record_use(conn, op)
        if forgotten:
            conn.exec_driver_sql(driver_sql("DELETE FROM calls WHERE run_id = :run_id",
                                            dialect), forgotten)
    reviews = [op for op in uses if op.data.get("review")]
    if reviews:  # after the commit: the rule reads the uses just written (issue 13)
        _review(db, ops[0].redis, reviews)


def _record_use(conn: Any, op: _Op) -> None:
    from concilium.memory.usefulness import record_uses

    data = op.data
    record_uses(conn, data["ids"], data["correct"], behaviors=data.get("behaviors") or (),
                run_id=op.run_id, team=data.get("team"), namespace=data.get("namespace"))


def _review(db: Database, redis: RedisLayer | None, ops: list[_Op]) -> None:
    """Quarantine what these runs' uses made reliably harmful (never fails the writer)."""
    from concilium.memory.store import Memory
    from concilium.memory.usefulness import review

    items = [(kind, int(i)) for op in ops for kind, key in (("lesson", "ids"),
             ("behavior", "behaviors")) for i in op.data.get(key) or ()]
    try:
        for kind, item in review(Memory(db, redis), items):
            log.warning("memory: quarantined %s %d (reliably harmful, see "
                        "`concilium memory behaviors` / `memory show`)", kind, item)
    except Exception:
        log.exception("memory: the usefulness review failed")


def _values(row: dict[str, Any], dialect: str) -> dict[str, Any]:
    """Python values as the driver stores them in our columns (JSON text, SQLite times)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, list | dict):
            value = json.dumps(value, ensure_ascii=False, default=str)
        elif isinstance(value, datetime) and dialect == "sqlite":
            value = value.strftime(_SQLITE_TIME)  # what SQLAlchemy's DateTime reads back
        out[key] = value
    return out


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _step_row(run_id: str, seq: int, step: dict[str, Any]) -> dict[str, Any]:
    at = step.get("at")
    return {
        "uid": str(step.get("id") or f"{run_id}-{seq}"),
        "run_id": run_id,
        "seq": seq,
        "node": str(step.get("node", "")),
        "role": str(step.get("role", "")),
        "kind": str(step.get("kind", "llm")),
        "model": str(step.get("model", "")),
        "round": int(step.get("round", 0) or 0),
        "messages": list(step.get("messages") or []),
        "output": str(step.get("output") or ""),
        "parsed": dict(step.get("parsed") or {}),
        "answer": step.get("answer"),
        "prompt_tokens": int(step.get("prompt_tokens", 0) or 0),
        "completion_tokens": int(step.get("completion_tokens", 0) or 0),
        "cost": float(step.get("cost", 0.0) or 0.0),
        "latency_ms": float(step.get("latency_ms", 0.0) or 0.0),
        "attempts": int(step.get("attempts", 1) or 0),
        "fallback_used": bool(step.get("fallback_used", False)),
        "cached": bool(step.get("cached", False)),
        "answer_changed": step.get("answer_changed"),
        "flip": step.get("flip"),
        "behaviors": step.get("behaviors"),
        "at": datetime.fromtimestamp(at, UTC) if isinstance(at, int | float) else utcnow(),
    }


def _event(op: _Op) -> dict[str, Any]:
    if op.kind == "step":
        return {"type": "step", "seq": op.data["seq"], "step": op.data["step"]}
    if op.kind == "event":
        return {"type": "event", **op.data}
    return {"type": op.kind, **op.data}


_writer = _Writer()
atexit.register(lambda: _writer.flush(10.0))


def flush(timeout_s: float | None = 30.0) -> bool:
    """Wait until every ledger event queued in this process so far is written.

    Runs do not wait for their own rows (that would cost every run a commit); the
    readers below flush first, so this process always reads its own writes.
    """
    return _writer.flush(timeout_s)


# ---------------------------------------------------------------------------- reading


def list_runs(
    db: Database, *, team: str | None = None, status: str | None = None, limit: int = 20,
) -> list[RunRow]:
    """The newest runs first."""
    flush()
    query = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id)
    if team is not None:
        query = query.where(RunRow.team == team)
    if status is not None:
        query = query.where(RunRow.status == status)
    with db.session() as session:
        return list(session.execute(query.limit(limit)).scalars().all())


class AmbiguousRunId(LookupError):
    """A run-id prefix that matches more than one run."""


def find_run(db: Database, run_id: str) -> RunRow | None:
    """A run with its steps loaded, by id or unique id prefix (as ``git`` finds commits)."""
    from sqlalchemy.orm import selectinload

    flush()
    with db.session() as session:
        query = select(RunRow).options(selectinload(RunRow.steps))
        row = session.execute(query.where(RunRow.id == run_id)).scalar_one_or_none()
        if row is not None:
            return row
        prefix = run_id.replace("%", "").replace("_", "")
        rows = session.execute(query.where(RunRow.id.like(prefix + "%")).limit(2)).scalars().all()
        if len(rows) > 1:
            raise AmbiguousRunId(f"run id {run_id!r} matches more than one run; give more of it")
        return rows[0] if rows else None


GROUPS = ("team", "role", "model", "strategy", "kind")


def usage_stats(
    db: Database,
    *,
    since: datetime | timedelta | None = None,
    until: datetime | None = None,
    by: Sequence[str] = ("team", "role", "model"),
    team: str | None = None,
) -> list[dict[str, Any]]:
    """Calls, tokens, cost and time of every step, grouped (``by``) over a time window.

    Args:
        since: a start time, or how far back from now (a ``timedelta``).
        until: an end time (default: now).
        by: any of ``team``, ``role``, ``model``, ``strategy``, ``kind``.
        team: only this team's runs.
    """
    unknown = [g for g in by if g not in GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    columns = {"team": RunRow.team, "strategy": RunRow.strategy, "role": StepRow.role,
               "model": StepRow.model, "kind": StepRow.kind}
    keys = [columns[g].label(g) for g in by]
    llm = StepRow.kind == "llm"
    query = (
        select(
            *keys,
            func.count(func.distinct(StepRow.run_id)).label("runs"),
            func.sum(case((llm & StepRow.cached.is_(False), 1), else_=0)).label("calls"),
            func.sum(case((llm & StepRow.cached.is_(True), 1), else_=0)).label("cached"),
            func.sum(case((llm, 0), else_=1)).label("tool_calls"),
            func.coalesce(func.sum(StepRow.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(StepRow.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(cast(StepRow.cost, Float)), 0.0).label("cost"),
            func.coalesce(func.sum(StepRow.latency_ms), 0.0).label("latency_ms"),
        )
        .select_from(StepRow)
        .join(RunRow, RunRow.id == StepRow.run_id)
        .group_by(*[columns[g] for g in by])
        .order_by(func.sum(StepRow.cost).desc(), *[columns[g] for g in by])
    )
    flush()
    if isinstance(since, timedelta):
        since = utcnow() - since
    if since is not None:
        query = query.where(RunRow.started_at >= since)
    if until is not None:
        query = query.where(RunRow.started_at < until)
    if team is not None:
        query = query.where(RunRow.team == team)
    with db.session() as session:
        return [dict(row._mapping) for row in session.execute(query).all()]
