"""Reflection memory and run ledger: SQL is the source of truth, Redis the shared hot layer.

- :class:`Memory` (``store.py``): ``remember`` / ``recall`` / ``search`` / ``forget`` /
  ``export`` lessons with provenance; owns the database, the Redis layer and the ledger.
- ``ledger.py``: every run and step, written as the run goes (batched, off the event loop).
- ``redis_layer.py``: response cache, hot reflections, live run events, locks; degrades
  to SQL alone with one warning when Redis goes away.
- ``distill.py``: recurring lessons -> named behaviors.
- ``behaviors.py``: behaviors recalled for a task, and what each role's prompt gets.
- ``usefulness.py``: runs that used a lesson or behavior vs comparable runs; quarantine.
- ``hot.py``: the namespace's hot set in Redis (recall answers, behaviors), versioned.
- ``hooks.py``: what ``Team.arun`` does with all of this.
- ``migrations/``: the Alembic schema, applied on first open.

Names are imported lazily so ``import concilium.memory`` does not load SQLAlchemy.

Example:
    >>> from concilium.memory import Memory
    >>> memory = Memory.open()  # CONCILIUM_DATABASE_URL, else SQLite under CONCILIUM_HOME
    >>> memory.recall("How much do 24 pencils cost?", namespace="shop")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from concilium._lazy import lazy_getattr

if TYPE_CHECKING:
    from concilium.memory.redis_layer import RedisUnavailableWarning
    from concilium.memory.store import Lesson, Memory

__all__ = ["Lesson", "Memory", "RedisUnavailableWarning"]

_LAZY = {
    "Lesson": "concilium.memory.store",
    "Memory": "concilium.memory.store",
    "RedisUnavailableWarning": "concilium.memory.redis_layer",
}


__getattr__ = lazy_getattr("concilium.memory", _LAZY)
