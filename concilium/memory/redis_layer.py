"""The optional Redis layer: response cache, hot reflections, live run events, locks.

Nothing here is the source of truth. Every operation degrades to "not
available": when Redis cannot be reached (at start or mid-run) the layer warns
once (:class:`RedisUnavailableWarning`), stops calling Redis, and the callers go
on with SQL alone. While it is down, the next call after ``reconnect_every_s``
pings Redis again; once it answers, the cache, hot set and event streams resume
by themselves, with no restart (a later outage warns again).

Keys, all under the prefix (``CONCILIUM_REDIS_PREFIX``, default ``concilium:``):

- ``cache:<sha256>``: a model reply (JSON), with a TTL;
- ``hot:<namespace>``: the newest reflections of a namespace (a capped list);
- ``run:<run_id>``: a stream of that run's events (start, every step, end);
- ``runs``: a stream announcing run starts and ends, to discover runs to follow;
- ``lock:<name>``: locks (redis-py's token locks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["RedisCache", "RedisLayer", "RedisUnavailableWarning", "redis_layer"]

T = TypeVar("T")

HOT_KEEP = 200
"""Reflections kept in a namespace's hot list."""
RUN_STREAM_MAXLEN = 10_000
RUNS_STREAM_MAXLEN = 10_000
RUN_STREAM_TTL_S = 7 * 24 * 3600
RECONNECT_EVERY_S = 5.0
"""How often a downed layer tries Redis again (at most once per interval, on use)."""
CACHE_TIMEOUT_S = 1.0
"""How long a model call waits for the response cache before going on without it."""
ASYNC_THREADS = 4
"""Threads that run the layer's calls for the event loop (a hung Redis holds them at most
``socket_timeout``; the loop itself never waits longer than its own timeout)."""


class RedisUnavailableWarning(RuntimeWarning):
    """Redis could not be reached; concilium carries on with SQL alone."""


class RedisLayer:
    """A Redis client that never raises connection errors at its callers."""

    def __init__(self, url: str, prefix: str = "concilium:") -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.prefix = prefix
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        self.reconnect_every_s = RECONNECT_EVERY_S
        self.warnings = 0
        """How many outages were reported (one warning each)."""
        self._threads: ThreadPoolExecutor | None = None
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            retry=Retry(NoBackoff(), 1),  # one immediate retry: survives a recycled socket
            health_check_interval=0,
            decode_responses=True,
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._call(lambda r: r.ping())

    def __repr__(self) -> str:
        return f"RedisLayer(prefix={self.prefix!r}, available={self.available})"

    @property
    def available(self) -> bool:
        return not self._down

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def reconnect(self) -> bool:
        """Try Redis again after an outage; ``True`` if it answers now (no new warning if not)."""
        try:
            self.client.ping()
        except self._errors:
            return False
        with self._lock:
            self._down = False
        return True

    def _call(self, fn: Callable[[Any], T], default: T = None) -> T:  # type: ignore[assignment]
        """Run ``fn(client)``; on a connection fault warn once, mark Redis down, return default."""
        if self._down and not self._retry_due():
            return default
        try:
            return fn(self.client)
        except self._errors as error:
            self._failed(error)
            return default

    async def off_loop(self, fn: Callable[[], T], default: T, timeout_s: float) -> T:
        """Run a blocking layer call (``fn``) on the layer's threads, for async callers.

        The event loop never blocks on Redis: after ``timeout_s`` the caller gets
        ``default`` and Redis is taken as down (one warning per outage), so later calls
        skip it at once until the next reconnect try. Threads rather than
        ``redis.asyncio``: its connections belong to one event loop, while the layer is
        shared by every loop of the process (each ``asyncio.run``), and the outage
        bookkeeping above stays in one place.
        """
        if self._down and time.monotonic() < self._retry_at:
            return default  # down and not yet due for a retry: no thread, no wait
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(ASYNC_THREADS,
                                                   thread_name_prefix="concilium-redis")
        future = asyncio.get_running_loop().run_in_executor(self._threads, fn)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            self._failed(TimeoutError(f"no answer within {timeout_s:g} s"))
            return default

    def _retry_due(self) -> bool:
        """Whether a downed layer should try Redis now (one caller per interval does)."""
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                return False
            self._retry_at = now + self.reconnect_every_s
        return self.reconnect()

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + self.reconnect_every_s
            if self._down:
                return
            self._down = True
            self.warnings += 1
        warnings.warn(
            f"Redis at {self._safe_url()} is unavailable ({type(error).__name__}: {error}); "
            "continuing with SQL alone (no response cache, hot set, live events or Redis locks)",
            RedisUnavailableWarning,
            stacklevel=3,
        )

    def _safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        with contextlib.suppress(Exception):
            return make_url(self.url).render_as_string(hide_password=True)
        return "the configured URL"

    # ------------------------------------------------------------------ cache

    def cache_get(self, key: str) -> str | None:
        return self._call(lambda r: r.get(self.key("cache", key)))

    def cache_put(self, key: str, value: str, ttl_s: float | None) -> None:
        ttl = None if ttl_s is None or ttl_s <= 0 else max(1, int(ttl_s))
        self._call(lambda r: r.set(self.key("cache", key), value, ex=ttl))

    # ------------------------------------------------------------------ hot set

    def hot_add(self, namespace: str, item: dict[str, Any], keep: int = HOT_KEEP) -> None:
        """Put a reflection at the head of its namespace's hot list."""
        key = self.key("hot", namespace)

        def push(r: Any) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.lpush(key, json.dumps(item, default=str))
            pipe.ltrim(key, 0, keep - 1)
            pipe.execute()

        self._call(push)

    def hot_recent(self, namespace: str, n: int = 20) -> list[dict[str, Any]] | None:
        """The newest ``n`` reflections of a namespace; ``None`` when Redis is unavailable."""
        raw = self._call(lambda r: r.lrange(self.key("hot", namespace), 0, max(0, n - 1)))
        return None if raw is None else [json.loads(x) for x in raw]

    def hot_forget(self, namespace: str, ids: Sequence[int] | None = None) -> None:
        """Drop forgotten reflections from a hot list (all of it when ``ids`` is None)."""
        key = self.key("hot", namespace)
        if ids is None:
            self._call(lambda r: r.delete(key))
            return
        gone = set(ids)

        def prune(r: Any) -> None:
            for raw in r.lrange(key, 0, -1):
                if json.loads(raw).get("id") in gone:
                    r.lrem(key, 0, raw)

        self._call(prune)

    # ------------------------------------------------------------------ events

    def publish(self, events: Sequence[tuple[str, dict[str, Any]]]) -> bool:
        """Append ``(run_id, event)`` pairs to the runs' streams, in one round trip."""
        if not events:
            return True

        def send(r: Any) -> bool:
            pipe = r.pipeline(transaction=False)
            touched: set[str] = set()
            for run_id, event in events:
                fields = {"type": str(event.get("type", "event")), "run_id": run_id,
                          "data": json.dumps(event, default=str)}
                stream = self.key("run", run_id)
                pipe.xadd(stream, fields, maxlen=RUN_STREAM_MAXLEN, approximate=True)
                touched.add(stream)
                if fields["type"] in ("run_start", "run_end"):
                    pipe.xadd(self.key("runs"), fields, maxlen=RUNS_STREAM_MAXLEN,
                              approximate=True)
            for stream in touched:
                pipe.expire(stream, RUN_STREAM_TTL_S)
            pipe.execute()
            return True

        return self._call(send, False)

    def follow(
        self, run_id: str, *, block_ms: int = 1000, timeout_s: float | None = None,
        from_start: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Yield a run's events as they are published, until its ``run_end`` (or the timeout)."""
        stream = self.key("run", run_id)
        last = "0-0" if from_start else "$"
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            def read(r: Any, since: str = last) -> Any:
                return r.xread({stream: since}, block=block_ms, count=100)

            reply = self._call(read)
            if reply is None and not self.available:
                return
            for _name, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    event = json.loads(fields["data"])
                    yield event
                    if event.get("type") == "run_end":
                        return

    # ------------------------------------------------------------------ locks

    @contextlib.contextmanager
    def lock(self, name: str, *, timeout_s: float = 600.0,
             wait_s: float | None = None) -> Iterator[bool]:
        """Hold ``lock:<name>`` across processes; yields ``False`` if Redis could not lock.

        ``timeout_s`` frees the lock if its holder dies; ``wait_s=None`` waits forever.
        """
        lock = self.client.lock(self.key("lock", name), timeout=timeout_s,
                                blocking_timeout=wait_s)
        acquired = self._call(lambda _r: bool(lock.acquire()), False)
        try:
            yield acquired
        finally:
            if acquired:
                self._call(lambda _r: lock.release())

    # ------------------------------------------------------------------ housekeeping

    def delete_prefix(self) -> int:
        """Delete every key under this layer's prefix (tests, ``memory forget --all``)."""

        def scan_delete(r: Any) -> int:
            count = 0
            for key in r.scan_iter(match=self.prefix + "*", count=500):
                count += r.delete(key)
            return count

        return self._call(scan_delete, 0)


class RedisCache:
    """The model-response cache behind ``agents.llm.chat`` (its ``ResponseCache``).

    Reads and writes run off the event loop and give up after ``timeout_s``: a slow
    or hung Redis costs a model call at most that long and never stalls the other
    coroutines of the loop (parallel samples, debaters, other runs of a service).
    """

    def __init__(self, layer: RedisLayer, *, ttl_s: float | None = 7 * 24 * 3600,
                 any_temperature: bool = False, timeout_s: float = CACHE_TIMEOUT_S) -> None:
        self.layer = layer
        self.ttl_s = ttl_s
        self.any_temperature = any_temperature
        self.timeout_s = timeout_s

    def accepts(self, temperature: float) -> bool:
        """Sampled replies are cached only when configured: a cache would fix the sample."""
        return self.any_temperature or temperature == 0

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.layer.off_loop(lambda: self.layer.cache_get(key), None, self.timeout_s)
        return None if raw is None else json.loads(raw)

    async def put(self, key: str, value: dict[str, Any]) -> None:
        text = json.dumps(value)
        await self.layer.off_loop(lambda: self.layer.cache_put(key, text, self.ttl_s), None,
                                  self.timeout_s)


_layers: dict[tuple[str, str], RedisLayer] = {}
_layers_lock = threading.Lock()


def redis_layer(url: str, prefix: str = "concilium:") -> RedisLayer:
    """The process's :class:`RedisLayer` for a URL and prefix (so it warns once per outage)."""
    with _layers_lock:
        layer = _layers.get((url, prefix))
        if layer is None:
            layer = _layers[(url, prefix)] = RedisLayer(url, prefix)
        return layer
