"""Fixtures for the memory, ledger and Redis tests: the real servers on localhost, no mocks.

Each PostgreSQL test gets its own schema (dropped afterwards) in the shared ``test``
database, and each Redis test its own key prefix (deleted afterwards), so the tests
can run repeatedly and side by side. A test skips, saying why, only when the server
cannot be reached.

Import the fixtures a test module uses: ``from memory_fixtures import memory, ...``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from concilium.settings import get_settings

PG_ADMIN_URL = os.environ.get(
    "CONCILIUM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_TEST_URL = os.environ.get("CONCILIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _pg_admin():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine(PG_ADMIN_URL, poolclass=NullPool)


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh, empty schema; yields a database URL whose search_path is that schema."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    schema = "concilium_t_" + uuid.uuid4().hex[:10]
    admin = _pg_admin()
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as error:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {error.orig}")
    joiner = "&" if "?" in PG_ADMIN_URL else "?"
    url = f"{PG_ADMIN_URL}{joiner}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        from concilium.memory.db import close_database
        from concilium.memory.ledger import flush

        flush(10.0)
        close_database(url)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema() as url:
        yield url


@contextlib.contextmanager
def sqlite_file(directory: Path) -> Iterator[str]:
    """A URL of a new SQLite file in ``directory``; its engine is disposed of afterwards."""
    from concilium.memory.db import close_database
    from concilium.memory.ledger import flush

    url = f"sqlite:///{(directory / 'memory.db').as_posix()}"
    try:
        yield url
    finally:
        flush(10.0)
        close_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with sqlite_file(tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test against a SQLite file and against PostgreSQL."""
    with sqlite_file(tmp_path) if request.param == "sqlite" else pg_schema() as url:
        yield url


@pytest.fixture
def memory(db_url: str):  # type: ignore[no-untyped-def]
    """A :class:`Memory` on a fresh, migrated database (no Redis)."""
    from concilium.memory.store import Memory

    mem = Memory.open(db_url, redis_url=False)
    yield mem
    mem.close()


def redis_reachable(url: str = REDIS_TEST_URL) -> str | None:
    """``None`` if Redis answers at ``url``, else why not."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as error:
        return f"Redis at {url} is not reachable: {error}"
    return None


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own on the real Redis, deleted afterwards."""
    why = redis_reachable()
    if why is not None:
        pytest.skip(why)
    prefix = f"concilium-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    for key in client.scan_iter(match=prefix + "*", count=500):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_env(redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings pointing at the real Redis (under our own prefix); returns the prefix."""
    monkeypatch.setenv("CONCILIUM_REDIS_URL", REDIS_TEST_URL)
    monkeypatch.setenv("CONCILIUM_REDIS_PREFIX", redis_prefix)
    get_settings.cache_clear()
    return redis_prefix


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 that a test can stop, to cut clients off a server.

    After :meth:`stop` every forwarded connection is closed and the port refuses new
    ones, exactly what a client sees when its server goes away. The real server is
    never touched.
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 6379), port: int = 0) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", port))  # port 0: any free one
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self._lock:
                if self._stopped.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Close every connection and stop listening (the port then refuses)."""
        self._stopped.set()
        self._listener.close()
        self._thread.join(2.0)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()


@pytest.fixture
def redis_proxy(redis_prefix: str) -> Iterator[TcpProxy]:
    """A stoppable proxy in front of the real Redis."""
    proxy = TcpProxy()
    yield proxy
    proxy.stop()
