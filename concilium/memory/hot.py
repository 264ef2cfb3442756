"""The namespace's hot set in Redis: recall answers and the behavior handbook, versioned.

Recall asks Redis first and SQL only on a miss. Every entry is stored under the
namespace's *version* (``memver:<namespace>``), and every write that changes what
recall would answer (a lesson stored or forgotten, a behavior distilled, anything
quarantined or restored) increments that version, from whichever process made it.
So a lesson learned in one process is recalled by every other on its next run,
with no message to miss: the other process's next read names the new version,
finds nothing under it, and reads SQL. Entries of old versions are never read
again and expire (``HOT_TTL_S``).

A read is one round trip (a Lua script reads the version and the entry together).
A miss remembers the version it read *before* querying SQL and stores its answer
under that one: if a write lands meanwhile the answer is filed under a version
nobody reads any more, never served as fresh.

Redis down: reads return a miss and recall uses SQL alone. A version bump that
could not reach Redis is kept by the process and sent when Redis answers again,
and ``HOT_TTL_S`` bounds how long any other staleness could last.
Counts of uses (``use_count`` …) inside a cached answer may lag until the next write.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concilium.memory.redis_layer import RedisLayer

__all__ = ["HOT_TTL_S", "HotMemory", "recall_key"]

HOT_TTL_S = 600
"""How long a cached answer lives (it is also dropped, in effect, by any write)."""

_READ = """
local v = redis.call('GET', KEYS[1]) or '0'
return {v, redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])}
"""


def recall_key(task: str, k: int, verified_only: bool) -> str:
    """The cache key of one recall question."""
    digest = hashlib.blake2b(task.encode("utf-8"), digest_size=16).hexdigest()
    return f"recall:{k}:{int(verified_only)}:{digest}"


class HotMemory:
    """Versioned recall answers over a :class:`RedisLayer` (which never raises at us)."""

    def __init__(self, layer: RedisLayer) -> None:
        self.layer = layer
        self._script: Any = None
        self._lock = threading.Lock()
        self._unsent: set[str] = set()
        """Namespaces whose version bump could not reach Redis yet."""
        self.hits = 0
        self.misses = 0

    def _version_key(self, namespace: str) -> str:
        return self.layer.key("memver", namespace)

    def _prefix(self, namespace: str) -> str:
        return self.layer.key("memhot", namespace) + ":"

    def get(self, namespace: str, key: str) -> tuple[str | None, Any]:
        """``(version, value)``: the entry under the current version, or ``(version, None)``.

        ``(None, None)`` when Redis is unavailable (then nothing is stored on the miss).
        """
        if self._unsent:
            self._send_unsent()
        if self._script is None:
            self._script = self.layer.client.register_script(_READ)
        reply = self.layer._call(
            lambda _r: self._script(
                keys=[self._version_key(namespace)], args=[self._prefix(namespace), key]
            )
        )
        if not reply:
            return None, None
        version, raw = reply[0], reply[1] if len(reply) > 1 else None
        if raw is None:
            self.misses += 1
            return str(version), None
        self.hits += 1
        return str(version), json.loads(raw)

    def put(self, namespace: str, version: str, key: str, value: Any) -> None:
        """Store ``value`` under the version read before computing it."""
        name = f"{self._prefix(namespace)}{version}:{key}"
        text = json.dumps(value, default=str)
        self.layer._call(lambda r: r.set(name, text, ex=HOT_TTL_S))

    def bump(self, *namespaces: str) -> None:
        """A write changed these namespaces: every process's cached answers are now stale."""
        names = set(namespaces)
        if not names:
            return

        def incr(r: Any) -> bool:
            pipe = r.pipeline(transaction=False)
            for namespace in sorted(names):
                pipe.incr(self._version_key(namespace))
            pipe.execute()
            return True

        if not self.layer._call(incr, False):
            with self._lock:
                self._unsent.update(names)

    def _send_unsent(self) -> None:
        with self._lock:
            names, self._unsent = self._unsent, set()
        self.bump(*names)
