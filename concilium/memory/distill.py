"""Distillation: recurring reflections -> named, concise behaviors (the "behavior handbook").

Lessons pile up one per failure and say the same thing many times. Distilling
groups the similar ones of a namespace and asks a model to condense each group
into one behavior, stored with the reflections it came from. A reflection that
has fed a behavior is not distilled again, and the whole pass runs under a lock
(Redis when available, else the database's), so concurrent processes never
distil the same behaviors twice.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from concilium.memory.models import Behavior, Reflection, behavior_sources, utcnow
from concilium.memory.store import Memory

__all__ = ["Distilled", "distill", "group_lessons", "parse_behavior"]

_NAME = re.compile(r"^\W*name\W*[:\-]\s*(.+)$", re.I | re.M)
_PROCEDURE = re.compile(r"^\W*procedure\W*[:\-]\s*(.+)", re.I | re.M | re.S)


@dataclass
class Distilled:
    """A behavior written by one distillation pass."""

    id: int
    namespace: str
    name: str
    procedure: str
    sources: list[int] = field(default_factory=list)


def _signature(row: Reflection) -> frozenset[str]:
    return frozenset(row.terms.split())


def _similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def group_lessons(rows: Sequence[Reflection], threshold: float = 0.3) -> list[list[Reflection]]:
    """Greedy single-pass clustering by word overlap (Jaccard of stems); biggest groups first.

    A reflection joins the group it overlaps most, if that overlap reaches
    ``threshold``; a group's words are the union of its members'.
    """
    groups: list[tuple[set[str], list[Reflection]]] = []
    for row in rows:
        sig = _signature(row)
        best, best_sim = None, threshold
        for words, members in groups:
            sim = _similarity(sig, frozenset(words))
            if sim >= best_sim:
                best, best_sim = (words, members), sim
        if best is None:
            groups.append((set(sig), [row]))
        else:
            best[0].update(sig)
            best[1].append(row)
    return sorted((members for _words, members in groups), key=len, reverse=True)


def parse_behavior(text: str, lessons: Sequence[str]) -> tuple[str, str]:
    """``(name, procedure)`` from a distiller reply; never raises.

    Without the requested form, the procedure is the whole reply (or, if empty,
    the shortest lesson) and the name is made from its first words.
    """
    name_match = _NAME.search(text)
    procedure_match = _PROCEDURE.search(text)
    procedure = " ".join((procedure_match.group(1) if procedure_match else text).split())
    if not procedure:
        procedure = min(lessons, key=len) if lessons else "(empty)"
    procedure = procedure[:1000]
    name = " ".join(name_match.group(1).split()) if name_match else ""
    if not name:
        name = " ".join(procedure.split()[:6])
    return name.strip(" .*\"'")[:200] or "behavior", procedure


@contextlib.contextmanager
def _exclusive(memory: Memory, name: str) -> Iterator[None]:
    """Redis's lock when Redis is up, else the database's own (advisory lock or lock file)."""
    if memory.redis is not None and memory.redis.available:
        with memory.redis.lock(name) as locked:
            if locked:
                yield
                return
    with memory.db.lock(name):
        yield


async def distill(
    memory: Memory,
    *,
    namespace: str,
    model: str | None = None,
    min_group: int = 3,
    threshold: float = 0.3,
    max_behaviors: int = 20,
    verified_only: bool = True,
) -> list[Distilled]:
    """Condense recurring lessons of ``namespace`` into behaviors; returns the new ones.

    Args:
        memory: where the reflections are and the behaviors go.
        namespace: whose lessons.
        model: the model that writes behaviors (default ``CONCILIUM_MODEL``).
        min_group: how many similar lessons make a recurring one.
        threshold: word overlap (0-1) for two lessons to count as similar.
        max_behaviors: at most this many behaviors per pass (biggest groups first).
        verified_only: use only lessons from checked outcomes.
    """
    import asyncio

    from concilium.agents.llm import chat
    from concilium.agents.prompts import render
    from concilium.settings import get_settings

    model = model or get_settings().model
    made: list[Distilled] = []
    with _exclusive(memory, f"distill:{namespace}"):
        rows = await asyncio.to_thread(_undistilled, memory, namespace, verified_only)
        groups = [g for g in group_lessons(rows, threshold) if len(g) >= min_group]
        for group in groups[:max_behaviors]:
            lessons = list(dict.fromkeys(r.lesson for r in group))[:20]
            tasks = list(dict.fromkeys(r.task for r in group))[:5]
            messages = render("distiller", None, lessons=lessons, tasks=tasks)
            reply = await chat(messages, model=model, temperature=0.0, max_tokens=200,
                               metadata={"role": "distiller", "node": "distiller"})
            name, procedure = parse_behavior(reply.text, lessons)
            behavior = await asyncio.to_thread(
                _store, memory, namespace, name, procedure, reply.model, [r.id for r in group],
                tasks, [r.run_id for r in group if r.run_id],
            )
            if behavior is not None:
                made.append(behavior)
    return made


def _undistilled(memory: Memory, namespace: str, verified_only: bool) -> list[Reflection]:
    """Reflections of a namespace that no behavior was distilled from yet, oldest first."""
    used = select(behavior_sources.c.reflection_id)
    query = (select(Reflection).where(Reflection.namespace == namespace)
             .where(Reflection.id.not_in(used)).order_by(Reflection.id)
             .where(Reflection.quarantined.is_(False)))  # a harmful lesson teaches no behavior
    if verified_only:
        query = query.where(Reflection.checked.is_(True))
    with memory.db.session() as session:
        return list(session.execute(query).scalars().all())


def _store(
    memory: Memory, namespace: str, name: str, procedure: str, model: str, ids: list[int],
    tasks: Sequence[str] = (), runs: Sequence[str] = (),
) -> Distilled | None:
    """Insert a behavior and its sources, unless another writer took those sources first.

    It is stored with why it exists (``source_runs``: the runs whose lessons it condenses)
    and what recall matches a task against (``terms``, see ``memory/behaviors.py``).
    """
    from concilium.memory.behaviors import behavior_terms

    with memory.db.write() as session:
        taken = session.execute(
            select(behavior_sources.c.reflection_id)
            .where(behavior_sources.c.reflection_id.in_(ids))
        ).scalars().all()
        free = [i for i in ids if i not in set(taken)]
        if not free:
            return None
        behavior = Behavior(namespace=namespace, name=name, procedure=procedure, model=model,
                            created_at=utcnow(), terms=behavior_terms(name, procedure, tasks),
                            source_runs=list(dict.fromkeys(runs)))
        session.add(behavior)
        session.flush()
        session.execute(behavior_sources.insert(),
                        [{"behavior_id": behavior.id, "reflection_id": i} for i in free])
        made = Distilled(behavior.id, namespace, name, procedure, free)
    if memory.hot is not None:  # every process recalls the new behavior on its next run
        memory.hot.bump(namespace)
    return made
