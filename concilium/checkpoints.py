"""Where durable runs keep their LangGraph checkpoints: the saver for the database in use.

SQLite (``langgraph-checkpoint-sqlite``) in ``checkpoints.db`` beside the ledger's
SQLite file, in the same ``.concilium/`` directory; PostgreSQL
(``langgraph-checkpoint-postgres``) in the ledger's own database when
``CONCILIUM_DATABASE_URL`` is a PostgreSQL URL; an in-memory saver for an
in-memory ledger. Every run's thread id is its run id, so ``concilium runs resume
RUN`` finds the run's last checkpoint with nothing else to remember. Secrets are
masked in what the saver writes (:class:`RedactingSerializer`), as in the ledger.

A PostgreSQL saver is opened per run (an ``async with``): psycopg connections belong
to one event loop. The SQLite saver is opened once per database file and process and
shared by every run (:class:`SqliteCheckpointer`): opening one per run (a connection,
a thread, the schema check) cost more than the run's checkpoints themselves.

The saver's setup (its tables and migrations) runs under the ledger's schema lock
(:func:`concilium.memory.db.schema_lock`), so processes starting together on a new
database never race to create the same table or record the same migration. A
database that cannot be reached or set up is one :class:`ConfigError` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver as _SqliteSaver

from concilium.errors import ConfigError, MissingDependencyError

__all__ = ["RunBusy", "SqliteCheckpointer", "checkpoint_path", "claim_run", "open_checkpointer",
           "thread_config"]

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

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = await _shared_sqlite(url, path)
    except (sqlite3.Error, OSError) as error:
        raise _unusable(url, error) from None
    yield saver


async def _set_up_postgres(saver: Any) -> None:
    """Create the saver's tables and run its migrations, one process at a time.

    ``AsyncPostgresSaver.setup`` is not safe to run from two processes at once: both
    read "no migration yet" and both insert migration 0 (a UniqueViolation on
    ``checkpoint_migrations_pkey``). Under the schema lock the second one finds every
    migration done. The lock is polled: a blocked wait would deadlock with the saver's
    ``CREATE INDEX CONCURRENTLY`` (see :func:`concilium.memory.db.schema_lock`).
    """
    from concilium.memory.db import SCHEMA_LOCK, _lock_key, _schema_lock_timeout
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
    key = _lock_key(SCHEMA_LOCK)
    deadline, pause = time.monotonic() + wait_s, 0.01
    while not await fetch("SELECT pg_try_advisory_lock(%s)", key):
        if time.monotonic() > deadline:
            raise _schema_lock_timeout()
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)
    try:
        await saver.setup()  # re-reads the migrations done, under the lock
    finally:
        await fetch("SELECT pg_advisory_unlock(%s)", key)


class _Saver(_SqliteSaver):
    def list_all(self, config: Any, **kwargs: Any) -> list[Any]:
        """``list``, read to the end (a generator cannot cross to the worker thread)."""
        return list(self.list(config, **kwargs))


class SqliteCheckpointer(_Saver):
    """LangGraph's SQLite saver, opened once per database file and process, shared by runs.

    Opening a saver per run (a connection, a thread, the schema check) cost more than
    the run's checkpoints. A checkpoint write in WAL mode with ``synchronous=NORMAL``
    (as the ledger: a commit survives the process being killed, which is what resume
    is for; only a power cut can lose the newest ones) is a few tens of microseconds,
    less than handing it to a thread, so each operation runs right here, on a
    connection that never waits for SQLite's write lock; only when another process
    holds that lock does it go to a worker thread (:func:`_worker`) whose connection
    waits as long as the ledger's does. Either way an operation is one short
    transaction, so a cancelled run never leaves one open (and the lock held) behind
    it. WAL checkpoints (the only fsyncs) are run by the worker, not by a run.
    """

    WAL_EVERY = 256
    """Commits between the worker's WAL checkpoints."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        from concilium.memory.db import SQLITE_BUSY_TIMEOUT_MS

        super().__init__(sqlite3.connect(str(path), check_same_thread=False, timeout=0))
        # As long a wait for the write lock as the ledger's: many processes write here.
        self.patient = _Saver(sqlite3.connect(
            str(path), check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000))
        self.path = path
        self._commits = 0

    def _configure(self) -> None:
        """Create the tables, then tune both connections (on the worker, at open)."""
        self.patient.setup()
        # Not setup() again here: its ALTER TABLE may want the write lock, and this
        # connection never waits for it.
        self.is_setup, self._has_task_path = True, self.patient._has_task_path
        self.conn.execute("PRAGMA journal_mode=WAL")
        for conn in (self.conn, self.patient.conn):
            conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # the worker's job, not a run's

    async def _do(self, name: str, *args: Any, **kwargs: Any) -> Any:
        import sqlite3

        try:
            result = getattr(_Saver, name)(self, *args, **kwargs)
        except sqlite3.OperationalError as error:
            if not _busy(error):
                raise
        else:
            if name in ("put", "put_writes", "delete_thread"):
                self._commits += 1
                if self._commits % self.WAL_EVERY == 0:
                    _worker().submit(self._wal_checkpoint)
            return result
        self.patient.serde = self.serde  # it may hold values serialised already
        call = functools.partial(getattr(self.patient, name), *args, **kwargs)
        return await asyncio.wrap_future(_worker().submit(call))

    def _wal_checkpoint(self) -> None:
        import sqlite3

        with contextlib.suppress(sqlite3.Error), self.patient.lock:
            self.patient.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def aget_tuple(self, config: Any) -> Any:
        return await self._do("get_tuple", config)

    async def alist(self, config: Any, *, filter: Any = None, before: Any = None,
                    limit: int | None = None) -> AsyncIterator[Any]:
        for item in await self._do("list_all", config, filter=filter, before=before,
                                   limit=limit):
            yield item


    async def aput(self, config: Any, checkpoint: Any, metadata: Any,
                   new_versions: Any) -> Any:
        typed = _Serialized(self.serde.dumps_typed(checkpoint), checkpoint)
        return await self._do("put", config, typed, metadata, new_versions)

    async def aput_writes(self, config: Any, writes: Any, task_id: str,
                          task_path: str = "") -> None:
        typed = [(channel, _Serialized(self.serde.dumps_typed(value)))
                 for channel, value in writes]
        await self._do("put_writes", config, typed, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._do("delete_thread", thread_id)

    async def aget_delta_channel_history(self, *, config: Any, channels: Any) -> Any:
        return await self._do("get_delta_channel_history", config=config, channels=channels)

    def close(self) -> None:
        for saver in (self, self.patient):
            with saver.lock:
                saver.conn.close()


def _busy(error: BaseException) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class _Serialized:
    """A value :class:`RedactingSerializer` has serialised already (on the event loop);
    ``saver.put`` may still read its fields (the checkpoint's ``id``)."""

    __slots__ = ("typed", "value")

    def __init__(self, typed: tuple[str, bytes], value: Any = None) -> None:
        self.typed = typed
        self.value = value

    def __getitem__(self, key: str) -> Any:
        return self.value[key]


MAX_OPEN_SQLITE = 16
"""Checkpoint files kept open per process (a test session touches hundreds)."""
_sqlite_savers: OrderedDict[str, SqliteCheckpointer] = OrderedDict()
_sqlite_lock = threading.Lock()
_workers: dict[int, ThreadPoolExecutor] = {}


def _worker() -> ThreadPoolExecutor:
    """The thread every SQLite checkpoint operation of this process runs on (one per pid:
    a forked child gets its own)."""
    pid = os.getpid()
    worker = _workers.get(pid)
    if worker is None:
        with _sqlite_lock:
            worker = _workers.get(pid)
            if worker is None:
                worker = _workers[pid] = ThreadPoolExecutor(
                    1, thread_name_prefix="concilium-checkpoints")
    return worker


async def _shared_sqlite(url: str, path: Path) -> SqliteCheckpointer:
    """This process's saver for checkpoint file ``path``, opened and set up on first use."""
    key = f"{os.getpid()}:{path}"
    with _sqlite_lock:
        saver = _sqlite_savers.get(key)
        if saver is not None:
            _sqlite_savers.move_to_end(key)
            return saver
    saver = await asyncio.wrap_future(_worker().submit(_open_sqlite, url, path))
    with _sqlite_lock:
        if key in _sqlite_savers:  # opened meanwhile by another task: keep that one
            _worker().submit(saver.close)
            return _sqlite_savers[key]
        _sqlite_savers[key] = saver
        while len(_sqlite_savers) > MAX_OPEN_SQLITE:
            # Forgotten, not closed: a run may still hold it; its connection closes
            # when the last holder lets go.
            _sqlite_savers.popitem(last=False)
    return saver


def _open_sqlite(url: str, path: Path) -> SqliteCheckpointer:
    """Open ``path`` and create the saver's tables (under the schema lock, once per
    process and file: processes starting together on a new database must not race)."""
    saver = _redacting(SqliteCheckpointer(path))
    try:
        if url in _ready:
            saver._configure()  # CREATE TABLE IF NOT EXISTS on existing tables: no write
        else:
            from filelock import FileLock, Timeout

            from concilium.memory.db import (
                SCHEMA_LOCK_WAIT_S,
                _schema_lock_timeout,
                schema_lock_path,
            )

            try:
                with FileLock(str(schema_lock_path(url)), timeout=SCHEMA_LOCK_WAIT_S,
                              thread_local=False):
                    saver._configure()
            except Timeout:
                raise _schema_lock_timeout() from None
            _ready.add(url)
    except BaseException:
        saver.close()
        raise
    return saver


def _unusable(url: str, error: BaseException) -> ConfigError:
    from concilium.memory.db import _one_line, _safe

    return ConfigError(f"cannot open the checkpoint database of {_safe(url)}: "
                       f"{_one_line(error)}; set CONCILIUM_DATABASE_URL, or run without "
                       "checkpoints (CONCILIUM_CHECKPOINT=false)")


_memory_savers: dict[str, Any] = {}


class RedactingSerializer:
    """The saver's serializer, masking secrets in everything it writes.

    A checkpoint is storage like the ledger: whatever a model echoed (a key, a bearer
    token) is masked on the way to disk, as it is in the ledger.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, _Serialized):
            return obj.typed
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
    if path is None or not isinstance(saver, SqliteCheckpointer):
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
    from concilium.memory.db import _lock_key

    key = _lock_key(f"run:{run_id}")  # the same key space as Database.lock
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
