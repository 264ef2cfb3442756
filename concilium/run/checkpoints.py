"""Where durable runs keep their LangGraph checkpoints: the saver for the database in use.

SQLite (``langgraph-checkpoint-sqlite``) in ``checkpoints.db`` beside the ledger's
SQLite file, in the same ``.concilium/`` directory; PostgreSQL
(``langgraph-checkpoint-postgres``) in the ledger's own database when
``CONCILIUM_DATABASE_URL`` is a PostgreSQL URL; an in-memory saver for an
in-memory ledger. Every run's thread id is its run id, so ``concilium runs resume
RUN`` finds the run's last checkpoint with nothing else to remember. Secrets are
masked in what the saver writes (:class:`RedactingSerializer`), as in the ledger.

A saver is opened per run (an ``async with``): aiosqlite and psycopg connections
belong to one event loop, and a run is the unit a service embeds.

The saver's setup (its tables and migrations) runs under the ledger's schema lock
(:func:`concilium.memory.db.schema_lock`), so processes starting together on a new
database never race to create the same table or record the same migration. A
database that cannot be reached or set up is one :class:`ConfigError` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from concilium.errors import ConfigError, MissingDependencyError

__all__ = ["RunBusy", "checkpoint_path", "claim_run", "open_checkpointer", "thread_config"]

_ready: set[str] = set()
"""Databases whose checkpoint tables this process has created already."""


def thread_config(run_id: str) -> dict[str, Any]:
    """The LangGraph config that names a run's thread."""
    return {"configurable": {"thread_id": run_id}}


def checkpoint_path(url: str) -> Path | None:
    """The SQLite checkpoint file for a ledger URL (``None``: not a SQLite file)."""
    from concilium.memory.db import parse_url

    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database)).with_name("checkpoints.db")


@contextlib.asynccontextmanager
async def open_checkpointer(url: str | None = None) -> AsyncIterator[Any]:
    """An async LangGraph saver for ledger database ``url`` (default: from settings).

    Raises:
        MissingDependencyError: PostgreSQL without ``concilium[postgres]`` installed.
        ConfigError: the database cannot be reached or its checkpoint tables set up.
    """
    from concilium.memory.db import parse_url

    if url is None:
        from concilium.settings import get_settings

        url = get_settings().sqlalchemy_url()
    parsed = parse_url(url)
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        except ImportError:
            raise MissingDependencyError(
                "checkpoints in PostgreSQL need langgraph-checkpoint-postgres; "
                "install it with: pip install 'concilium[postgres]'") from None
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        async with contextlib.AsyncExitStack() as stack:
            try:
                saver = await stack.enter_async_context(AsyncPostgresSaver.from_conn_string(dsn))
                if url not in _ready:
                    await _set_up_postgres(saver)
                    _ready.add(url)
            except psycopg.Error as error:
                raise _unusable(url, error) from None
            yield _redacting(saver)
        return
    path = checkpoint_path(url)
    if path is None:
        from langgraph.checkpoint.memory import InMemorySaver

        yield _redacting(_memory_savers.setdefault(url, InMemorySaver()))
        return
    import sqlite3

    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with contextlib.AsyncExitStack() as stack:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opened once here first: aiosqlite's thread outlives a failed connect and
            # then trips over the closed event loop, with a traceback of its own.
            sqlite3.connect(path).close()
            saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(str(path)))
            stack.push_async_callback(_roll_back_unfinished, saver.conn)
            await _set_up_sqlite(saver, url)
        except (sqlite3.Error, OSError) as error:
            raise _unusable(url, error) from None
        yield _redacting(saver)


async def _set_up_postgres(saver: Any) -> None:
    """Create the saver's tables and run its migrations, one process at a time.

    ``AsyncPostgresSaver.setup`` is not safe to run from two processes at once: both
    read "no migration yet" and both insert migration 0 (a UniqueViolation on
    ``checkpoint_migrations_pkey``). Under the schema lock the second one finds every
    migration done. The lock is polled: a blocked wait would deadlock with the saver's
    ``CREATE INDEX CONCURRENTLY`` (see :func:`concilium.memory.db.schema_lock`).
    """
    from concilium.memory.db import SCHEMA_LOCK, lock_key, schema_lock_timeout
    from concilium.memory.db import SCHEMA_LOCK_WAIT_S as wait_s

    async def fetch(sql: str, *args: Any) -> Any:
        async with saver.lock:
            row = await (await saver.conn.execute(sql, args or None)).fetchone()
        return next(iter(row.values())) if isinstance(row, dict) else row[0]

    async def current() -> bool:
        if not await fetch("SELECT to_regclass('checkpoint_migrations') IS NOT NULL"):
            return False
        latest = await fetch("SELECT max(v) FROM checkpoint_migrations")
        return latest is not None and latest >= len(saver.MIGRATIONS) - 1

    if await current():
        return  # the common case: set up long ago, no lock taken
    key = lock_key(SCHEMA_LOCK)
    deadline, pause = time.monotonic() + wait_s, 0.01
    while not await fetch("SELECT pg_try_advisory_lock(%s)", key):
        if time.monotonic() > deadline:
            raise schema_lock_timeout()
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)
    try:
        await saver.setup()  # re-reads the migrations done, under the lock
    finally:
        await fetch("SELECT pg_advisory_unlock(%s)", key)


async def _set_up_sqlite(saver: Any, url: str) -> None:
    """Create the saver's tables (once per process and file, under the schema lock)."""
    from concilium.memory.db import SQLITE_BUSY_TIMEOUT_MS

    # As long a wait for the write lock as the ledger's: aiosqlite's 5 s default is too
    # short for many processes writing checkpoints on a busy machine ("database is locked").
    await saver.conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    if url in _ready:
        await saver.setup()  # CREATE TABLE IF NOT EXISTS on existing tables: no write
    else:
        from filelock import FileLock, Timeout

        from concilium.memory.db import SCHEMA_LOCK_WAIT_S, schema_lock_path, schema_lock_timeout

        lock = FileLock(str(schema_lock_path(url)), timeout=SCHEMA_LOCK_WAIT_S,
                        thread_local=False)
        try:
            await asyncio.to_thread(lock.acquire)
        except Timeout:
            raise schema_lock_timeout() from None
        try:
            await saver.setup()
        finally:
            lock.release()
        _ready.add(url)
    # WAL with synchronous=NORMAL, as the ledger: a commit survives the process
    # being killed (what resume is for); only a power cut can lose the newest ones.
    await saver.conn.execute("PRAGMA synchronous=NORMAL")


def _unusable(url: str, error: BaseException) -> ConfigError:
    from concilium.memory.db import one_line, safe_url

    return ConfigError(f"cannot open the checkpoint database of {safe_url(url)}: "
                       f"{one_line(error)}; set CONCILIUM_DATABASE_URL, or run without "
                       "checkpoints (CONCILIUM_CHECKPOINT=false)")


async def _roll_back_unfinished(conn: Any) -> None:
    """Roll back a write a cancelled run left uncommitted, before the connection closes.

    A run cancelled while the saver writes (Ctrl-C, a service cancelling its task) can
    leave an INSERT without its COMMIT. Closing such a connection while a cancelled
    read's cursor is still referenced (by the exception's traceback) turns it into a
    zombie that keeps the write lock: every later run in the process then fails with
    "database is locked". A rollback first releases the lock whatever holds the cursor.
    """
    with contextlib.suppress(Exception):  # closed already, or never opened
        if conn.in_transaction:
            await conn.rollback()


_memory_savers: dict[str, Any] = {}


class RedactingSerializer:
    """The saver's serializer, masking secrets in everything it writes.

    A checkpoint is storage like the ledger: whatever a model echoed (a key, a bearer
    token) is masked on the way to disk, as it is in the ledger.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        from concilium.secrets import redact_obj

        return self.inner.dumps_typed(redact_obj(obj))  # type: ignore[no-any-return]

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _redacting(saver: Any) -> Any:
    if not isinstance(saver.serde, RedactingSerializer):
        saver.serde = RedactingSerializer(saver.serde)
    return saver


class RunBusy(ConfigError):
    """Another process is running (or resuming) this run right now."""


@contextlib.asynccontextmanager
async def claim_run(run_id: str, saver: Any, url: str | None = None) -> AsyncIterator[None]:
    """Hold run ``run_id`` for this process while it runs, so no other process resumes it.

    The claim is a lock the operating system or the database server drops when its
    holder dies (``flock`` on a file beside ``checkpoints.db``; a PostgreSQL session
    advisory lock on the saver's own connection), so a killed run is free to resume at
    once and a live one is never run twice. Other savers are not claimed.

    Raises:
        RunBusy: the run is held by another live process.
    """
    conn = getattr(saver, "conn", None)
    if type(saver).__name__ == "AsyncPostgresSaver" and conn is not None:
        async with _pg_claim(run_id, saver, conn):
            yield
        return
    if url is None:
        from concilium.settings import get_settings

        url = get_settings().sqlalchemy_url()
    path = checkpoint_path(url)
    if path is None or type(saver).__name__ != "AsyncSqliteSaver":
        yield
        return
    with _file_claim(run_id, path.parent / "runs"):
        yield


@contextlib.contextmanager
def _file_claim(run_id: str, directory: Path) -> Any:
    import fcntl
    import hashlib

    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(run_id.encode()).hexdigest()[:24] + ".lock"
    with open(directory / name, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_id) from None
        try:
            yield
        finally:
            (directory / name).unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def _pg_claim(run_id: str, saver: Any, conn: Any) -> AsyncIterator[None]:
    from concilium.memory.db import lock_key

    key = lock_key(f"run:{run_id}")  # the same key space as Database.lock
    async with saver.lock:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS held",
                                        (key,))).fetchone()
    held = row["held"] if isinstance(row, dict) else row[0]
    if not held:
        raise _busy(run_id)
    try:
        yield
    finally:
        async with saver.lock:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _busy(run_id: str) -> RunBusy:
    return RunBusy(f"run {run_id!r} is running in another process; wait for it, or stop "
                   "that process first")
