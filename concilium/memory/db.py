"""Opening the ledger database: engine, sessions, migrations on first use, locks.

One :class:`Database` per URL per process, shared by every run in it. The first
open migrates the schema up with Alembic's API (no ``alembic.ini``), under the
schema lock (:func:`schema_lock`), so many processes starting at once on an empty
database migrate it exactly once. The checkpoint saver's own setup
(``concilium.checkpoints``) takes the same lock: every schema step of a database
runs one process at a time. A database that cannot be opened or migrated is one
:class:`ConfigError` line, never a driver's traceback.

SQLite is tuned for many writers: WAL (readers never block the writer), a long
busy timeout, and write transactions that take the write lock up front
(``BEGIN IMMEDIATE``) so two writers never deadlock upgrading their locks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from concilium.errors import ConfigError, MissingDependencyError

__all__ = ["Database", "close_database", "database_error", "driver_sql", "driver_values",
           "head_revision", "insert_once", "is_busy", "lock_key", "migrate", "one_line",
           "open_database", "parse_url", "safe_url", "schema_lock", "schema_lock_timeout",
           "thread_lock"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_OPEN = 16
"""Engines kept open per process; the least recently opened beyond this are disposed of
(a disposed engine reconnects if used again), so a process that touches many databases,
like a test session, does not hoard connections."""
MIGRATIONS = "concilium.memory:migrations"
SCHEMA_LOCK_WAIT_S = 600.0
"""How long a process waits for another one's schema step (a migration is seconds)."""
SCHEMA_LOCK = "schema"
"""The advisory lock (PostgreSQL) every schema step of a database is taken under."""


class Database:
    """An engine and session factory for one database URL, migrated to the latest schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.dialect: str = self.engine.dialect.name
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        """The engine for write transactions (on SQLite they take the write lock up front)."""
        self._writes = sessionmaker(self.write_engine, expire_on_commit=False)
        self._quick: tuple[int, Any] | None = None
        self._quick_lock = threading.Lock()
        self._sqlite_path: tuple[str, Path | None] | None = None

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, for SQLite on disk; ``None`` otherwise.

        Parsed once per URL: every run asks (its recall check and journal writes on the
        event loop), and parsing a URL costs more than the SQLite lookup it precedes.
        """
        known = self._sqlite_path
        if known is None or known[0] != self.url:
            url = make_url(self.url)
            path = (None if self.dialect != "sqlite" or url.database in (None, "", ":memory:")
                    else Path(str(url.database)))
            known = self._sqlite_path = (self.url, path)
        return known[1]

    def session(self) -> Session:
        """A session for reading (and small writes); commits are the caller's."""
        return self._sessions()

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction holds the write lock from its start, committed at exit."""
        with self._writes() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """A cross-process lock without Redis: an advisory lock (PostgreSQL) or a lock file.

        Held for as long as the ``with`` block runs, so it must not be a write
        transaction (that would stall every ledger writer meanwhile).
        """
        if self.dialect == "postgresql":
            key = lock_key(name)
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            return
        from filelock import FileLock

        path = self.sqlite_path
        if path is None:  # an in-memory database lives in one process: a thread lock will do
            with thread_lock(f"{self.url}:{name}"):
                yield
            return
        safe = "".join(c if c.isalnum() else "_" for c in name)
        with FileLock(str(path) + f".{safe}.lock"):
            yield

    @contextlib.contextmanager
    def quick_write(self) -> Iterator[Any]:
        """A SQLite connection for one short write made right on the event loop, or ``None``.

        A commit in WAL mode is tens of microseconds, less than handing the write to a
        thread; this connection never waits for the write lock, so it cannot stall the
        loop: the caller's statement raises :func:`is_busy` errors instead, and the
        caller then writes off the loop as usual. ``None`` (not a SQLite file, or the
        connection is in use by another thread): write off the loop. Autocommit: each
        statement is its own transaction.
        """
        path = self.sqlite_path
        if path is None or not self._quick_lock.acquire(blocking=False):
            yield None
            return
        try:
            import os
            import sqlite3

            if self._quick is None or self._quick[0] != os.getpid():  # a forked child
                conn = sqlite3.connect(str(path), timeout=0, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA wal_autocheckpoint = 0")  # the ledger writer's job
                self._quick = (os.getpid(), conn)
            yield self._quick[1]
        finally:
            self._quick_lock.release()

    def dispose(self) -> None:
        self.engine.dispose()
        with self._quick_lock:
            if self._quick is not None:
                with contextlib.suppress(Exception):
                    self._quick[1].close()
                self._quick = None


_databases: OrderedDict[str, Database] = OrderedDict()
_open_lock = threading.Lock()


def open_database(url: str | None = None) -> Database:
    """The :class:`Database` for ``url`` (default: from settings), migrated on first open.

    Raises:
        ConfigError: the URL is not valid or the database cannot be reached.
        MissingDependencyError: the URL's driver is not installed.
    """
    if url is None:
        from concilium.settings import get_settings

        url = get_settings().sqlalchemy_url()
    with _open_lock:
        db = _databases.get(url)
        if db is None:
            db = Database(url)
            try:
                migrate(db.engine)
            except SQLAlchemyError as error:
                db.dispose()
                raise ConfigError(f"cannot migrate the ledger database {safe_url(url)}: "
                                  f"{one_line(error)}") from None
            _databases[url] = db
            while len(_databases) > MAX_OPEN:
                _databases.popitem(last=False)[1].dispose()
        _databases.move_to_end(url)
        return db


def close_database(url: str | None = None) -> None:
    """Dispose of one open engine, or of all (``None``): tests, or a process about to fork."""
    with _open_lock:
        for key in [url] if url is not None else list(_databases):
            db = _databases.pop(key, None)
            if db is not None:
                db.dispose()


@cache
def head_revision() -> str:
    """The newest schema revision shipped in this package.

    Read from the migration files' ``revision``/``down_revision`` assignments rather than
    through alembic: importing alembic costs ~0.4 s of every process's first run, and it
    is needed only when there is something to migrate. Alembic decides when the files
    do not name exactly one head.
    """
    import ast
    from importlib import resources

    revisions: dict[str, str | None] = {}
    folder = resources.files("concilium.memory.migrations").joinpath("versions")
    for entry in folder.iterdir():
        if not entry.name.endswith(".py") or entry.name.startswith("_"):
            continue
        found: dict[str, Any] = {}
        for node in ast.parse(entry.read_text(encoding="utf-8")).body:
            target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
            name = getattr(target, "id", None)
            if name in ("revision", "down_revision") and isinstance(node.value, ast.Constant):
                found[name] = node.value.value
        if isinstance(found.get("revision"), str):
            revisions[found["revision"]] = found.get("down_revision")
    heads = set(revisions) - set(revisions.values())
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision a database is at (``None`` for an empty one)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``, once, even with many processes racing to do it."""
    if revision == "head" and current_revision(engine) == head_revision():
        return  # the common case: already migrated, no lock taken
    from alembic import command

    config = _alembic_config()
    with schema_lock(engine), engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            # Re-checked under the lock: another process may have just done it.
            config.attributes["connection"] = conn
            command.upgrade(config, revision)


@contextlib.contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Hold the lock under which every schema step of ``engine``'s database runs.

    PostgreSQL: a session advisory lock, polled with ``pg_try_advisory_lock`` from
    outside any transaction. A blocking wait would hold a snapshot, and the checkpoint
    saver's ``CREATE INDEX CONCURRENTLY`` waits for every older snapshot to end: the
    holder and the waiter would wait for each other. SQLite: a lock file beside the
    database. The server or the kernel drops either if its holder dies.

    Raises:
        ConfigError: another process held it for longer than ``SCHEMA_LOCK_WAIT_S``.
    """
    if engine.dialect.name == "postgresql":
        key = lock_key(SCHEMA_LOCK)
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            poll_schema_lock(lambda: bool(conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    path = schema_lock_path(engine.url)
    if path is None:  # in memory: one process
        with thread_lock(f"{engine.url}:{SCHEMA_LOCK}"):
            yield
        return
    from filelock import FileLock, Timeout

    try:
        with FileLock(str(path), timeout=SCHEMA_LOCK_WAIT_S, thread_local=False):
            yield
    except Timeout:
        raise schema_lock_timeout() from None


def schema_lock_path(url: str | URL) -> Path | None:
    """The lock file of a SQLite database's schema steps (``None``: not a SQLite file)."""
    parsed = parse_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database) + ".schema.lock")


def poll_schema_lock(try_lock: Any) -> None:
    """Call ``try_lock()`` until it returns true (the schema lock is ours), backing off.

    Raises:
        ConfigError: not ours within ``SCHEMA_LOCK_WAIT_S``.
    """
    deadline = time.monotonic() + SCHEMA_LOCK_WAIT_S
    pause = 0.01
    while not try_lock():
        if time.monotonic() > deadline:
            raise schema_lock_timeout()
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def schema_lock_timeout() -> ConfigError:
    """The error of a schema lock waited for too long."""
    return ConfigError(f"waited {SCHEMA_LOCK_WAIT_S:g} s for another process to finish "
                       "migrating the database; is one stuck?")


def parse_url(url: str) -> URL:
    """``url`` parsed, or one :class:`ConfigError` line saying what a database URL looks like."""
    try:
        return make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"not a database URL: {url!r}; expected e.g. sqlite:///path/concilium.db or "
            "postgresql+psycopg://user@host:5432/db (CONCILIUM_DATABASE_URL)"
        ) from None


def database_error(error: BaseException) -> str | None:
    """One line for a database driver's error (``None``: not one), for the CLI.

    Start-up errors are :class:`ConfigError` already; this catches what a driver
    raises later (the server went away mid-run), without importing any driver.
    """
    import sqlite3

    kinds: list[type[BaseException]] = [SQLAlchemyError, sqlite3.Error]
    for module, name in (("psycopg", "Error"), ("aiosqlite", "Error")):
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            kinds.append(kind)
    if not isinstance(error, tuple(kinds)):
        return None
    return f"database error: {one_line(error)}"


def one_line(error: BaseException) -> str:
    """A driver error's own first line (SQLAlchemy's wrapper adds SQL and a link)."""
    inner = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return f"{type(inner).__name__}: {lines[0] if lines else 'no message'}"


def safe_url(url: str) -> str:
    """A database URL fit for a message: its password hidden."""
    with contextlib.suppress(ArgumentError):
        return make_url(url).render_as_string(hide_password=True)
    return "(unparsable URL)"


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def _engine(url: str) -> Engine:
    parsed = parse_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool  # one connection, or each sees its own empty db
        else:
            try:
                Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigError(f"cannot open the ledger database {safe_url(url)}: "
                                  f"{one_line(error)}") from None
        kwargs["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,  # the ledger writer thread shares the pool
        }
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise ConfigError(f"unknown database dialect in {parsed.drivername!r}") from None
    except ModuleNotFoundError as error:
        extra = "postgres" if parsed.get_backend_name() == "postgresql" else None
        hint = f"; install it with: pip install 'concilium[{extra}]'" if extra else ""
        raise MissingDependencyError(f"database driver {error.name!r} is missing{hint}") from None
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    try:
        with engine.connect():
            pass
    except DBAPIError as error:
        engine.dispose()
        raise ConfigError(
            f"cannot open the ledger database {parsed.render_as_string(hide_password=True)}: "
            f"{one_line(error)}; set CONCILIUM_DATABASE_URL, or run without memory "
            "(memory=False)"
        ) from None
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below): pysqlite's own transaction handling cannot
        # take the write lock up front, and it hides BEGIN from SQLAlchemy.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def is_busy(error: BaseException) -> bool:
    """Whether a SQLite error means another connection holds the lock (try again later)."""
    text = str(error).lower()
    return "locked" in text or "busy" in text


def driver_sql(sql: str, dialect: str) -> str:
    """SQL written with ``:name`` placeholders, in the driver's own style, for
    ``exec_driver_sql`` (sqlite3 takes ``:name`` as it is; psycopg wants ``%(name)s``)."""
    if dialect == "sqlite":
        return sql
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy's ``DateTime`` stores a time in SQLite (and reads it back)."""


def driver_values(row: dict[str, Any], dialect: str) -> dict[str, Any]:
    """Python values as the driver stores them in our columns (JSON text, SQLite times),
    for ``exec_driver_sql`` (the ledger's and the journal's hot path skip the ORM)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, list | dict):
            value = json.dumps(value, ensure_ascii=False, default=str)
        elif isinstance(value, datetime) and dialect == "sqlite":
            value = value.strftime(SQLITE_TIME)
        out[key] = value
    return out


def insert_once(sql: str, dialect: str) -> str:
    """An ``INSERT`` that skips rows whose unique key is already there (a retried or
    replayed write), in the dialect's own words."""
    if dialect == "sqlite":
        return sql.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
    return sql + " ON CONFLICT DO NOTHING"


def lock_key(name: str) -> int:
    """A signed 64-bit key for PostgreSQL advisory locks."""
    return int.from_bytes(hashlib.sha256(f"concilium:{name}".encode()).digest()[:8], "big",
                          signed=True)


_thread_locks: dict[str, threading.Lock] = {}


def thread_lock(name: str) -> threading.Lock:
    """One lock per name in this process (e.g. one writer at a time per database)."""
    with _open_lock:
        return _thread_locks.setdefault(name, threading.Lock())
