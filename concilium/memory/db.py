"""Opening the ledger database: engine, sessions, migrations on first use, locks.

One :class:`Database` per URL per process, shared by every run in it. The first
open migrates the schema up with Alembic's API (no ``alembic.ini``), inside a
database-side lock, so many processes starting at once on an empty database
migrate it exactly once.

SQLite is tuned for many writers: WAL (readers never block the writer), a long
busy timeout, and write transactions that take the write lock up front
(``BEGIN IMMEDIATE``) so two writers never deadlock upgrading their locks.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from concilium.errors import ConfigError, MissingDependencyError

__all__ = ["Database", "close_database", "driver_sql", "head_revision", "insert_once",
           "migrate", "open_database"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_OPEN = 16
"""Engines kept open per process; the least recently opened beyond this are disposed of
(a disposed engine reconnects if used again), so a process that touches many databases,
like a test session, does not hoard connections."""
MIGRATIONS = "concilium.memory:migrations"


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

    def __repr__(self) -> str:
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, for SQLite on disk; ``None`` otherwise."""
        url = make_url(self.url)
        if self.dialect != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(str(url.database))

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
            key = _lock_key(name)
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
            with _thread_lock(f"{self.url}:{name}"):
                yield
            return
        safe = "".join(c if c.isalnum() else "_" for c in name)
        with FileLock(str(path) + f".{safe}.lock"):
            yield

    def dispose(self) -> None:
        self.engine.dispose()


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
            migrate(db.engine)
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
    """The newest schema revision shipped in this package."""
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
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("migrate")})
            # Re-checked under the lock: another process may have just done it.
            config.attributes["connection"] = conn
            command.upgrade(config, revision)


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return config


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"not a database URL: {url!r}; expected e.g. sqlite:///path/concilium.db or "
            "postgresql+psycopg://user@host:5432/db (CONCILIUM_DATABASE_URL)"
        ) from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool  # one connection, or each sees its own empty db
        else:
            Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
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
    except OperationalError as error:
        raise ConfigError(
            f"cannot open the ledger database {parsed.render_as_string(hide_password=True)}: "
            f"{error.orig}; set CONCILIUM_DATABASE_URL, or run without memory (memory=False)"
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


def driver_sql(sql: str, dialect: str) -> str:
    """SQL written with ``:name`` placeholders, in the driver's own style, for
    ``exec_driver_sql`` (sqlite3 takes ``:name`` as it is; psycopg wants ``%(name)s``)."""
    if dialect == "sqlite":
        return sql
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)


def insert_once(sql: str, dialect: str) -> str:
    """An ``INSERT`` that skips rows whose unique key is already there (a retried or
    replayed write), in the dialect's own words."""
    if dialect == "sqlite":
        return sql.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
    return sql + " ON CONFLICT DO NOTHING"


def _lock_key(name: str) -> int:
    """A signed 64-bit key for PostgreSQL advisory locks."""
    return int.from_bytes(hashlib.sha256(f"concilium:{name}".encode()).digest()[:8], "big",
                          signed=True)


_thread_locks: dict[str, threading.Lock] = {}


def _thread_lock(name: str) -> threading.Lock:
    with _open_lock:
        return _thread_locks.setdefault(name, threading.Lock())
