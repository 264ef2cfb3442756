"""Reflection memory and run ledger: SQL is the source of truth, Redis the shared hot layer.

This package is *below* the run, the graphs and the roles: it stores and recalls,
and never calls a model nor imports ``concilium.agents``, ``concilium.graphs``,
``concilium.team`` or ``concilium.run`` (``tests/test_layers.py`` checks it). What a
run does with memory (recall, reflect, remember) is in :mod:`concilium.run.memory`;
distilling behaviors with a model is in :mod:`concilium.run.distill`.

- ``backend.py``: :class:`MemoryBackend`, what a run needs of memory (recall, remember,
  record steps, journal calls, cache). A new backend is a module here implementing it.
- :class:`Memory` (``store.py``): the SQL implementation: ``remember`` / ``recall`` /
  ``search`` / ``forget`` / ``export`` lessons with provenance; owns the database, the
  Redis layer and the ledger. ``text.py`` (the words of a lesson) and ``search.py``
  (the full-text engine in SQL) are its recall.
- ``db.py``, ``models.py``: engines, locks, driver helpers; the ORM tables.
- ``ledger.py``: every run and step, written as the run goes (batched, off the event loop).
- ``journal.py``: a durable run's completed model calls, replayed on resume.
- ``redis_layer.py``: response cache, hot reflections, live run events, locks; degrades
  to SQL alone with one warning when Redis goes away.
- ``behaviors.py``: behaviors recalled for a task, and what each role's prompt gets.
- ``usefulness.py``: runs that used a lesson or behavior vs comparable runs; quarantine.
- ``hot.py``: the namespace's hot set in Redis (recall answers, behaviors), versioned.
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
