"""Behavior-conditioned inference: the handbook's behaviors recalled into the prompts.

A behavior is a name and a one-line procedure distilled from recurring lessons
(``distill.py``; Metacognitive Reuse). At run start :func:`recall_behaviors`
picks the ``memory.behaviors_k`` behaviors of the team's namespace most relevant
to the task (idf-weighted overlap of stems with what the behavior says and the
tasks it was learned on), skipping quarantined ones. A :class:`MemoryView` then
hands each role the lessons and behaviors the team file says it reads
(``memory.lessons_for`` / ``memory.behaviors_for``), and tells, from the prompt
as rendered, which behaviors and lessons a step really used: a user's own
template that leaves them out does not count as a use.

Plain data and SQL only: nothing here calls a model or imports the layers above.

Example:
    >>> found = recall_behaviors(memory, "How much do 24 pencils cost?", namespace="shop", k=3)
    >>> view = MemoryView(lessons=[], behaviors=found, behaviors_for=("generator",))
    >>> view.vars_for("generator", "generator", None)["behaviors"]
    ['unit-price: multiply the unit price by the count first']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from concilium.memory.models import Behavior
from concilium.memory.store import index_terms, query_terms, stem

if TYPE_CHECKING:
    from concilium.memory.store import Memory

__all__ = ["MemoryView", "RecalledBehavior", "behavior_terms", "load_behaviors", "recall_behaviors"]


@dataclass(frozen=True)
class RecalledBehavior:
    """A behavior as a run sees it (and as the hot layer caches it)."""

    id: int
    name: str
    procedure: str
    terms: str = ""
    right_count: int = 0
    wrong_count: int = 0
    use_count: int = 0
    source_runs: tuple[str, ...] = ()
    score: float = 0.0

    @property
    def line(self) -> str:
        """How it is written into a prompt: ``name: procedure``."""
        return f"{self.name}: {self.procedure}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["source_runs"] = list(self.source_runs)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RecalledBehavior:
        return cls(**{**data, "source_runs": tuple(data.get("source_runs") or ())})


def behavior_terms(name: str, procedure: str, tasks: Sequence[str] = ()) -> str:
    """What a task is matched against: stems of the behavior and of the tasks it came from."""
    return index_terms(" ".join(tasks), f"{name} {procedure}")


def load_behaviors(memory: Memory, namespace: str) -> list[RecalledBehavior]:
    """Every active (not quarantined) behavior of ``namespace``: Redis's hot copy, else SQL.

    The hot copy is keyed by the namespace's version, which every write bumps, so a
    behavior distilled or quarantined by any process is seen by all on their next run.
    """
    hot = memory.hot
    version = None
    if hot is not None:
        version, cached = hot.get(namespace, "behaviors")
        if cached is not None:
            return [RecalledBehavior.from_json(item) for item in cached]
    query = (
        select(Behavior)
        .where(Behavior.namespace == namespace)
        .where(Behavior.quarantined.is_(False))
        .order_by(Behavior.id)
    )
    with memory.db.session() as session:
        rows = session.execute(query).scalars().all()
        found = [
            RecalledBehavior(
                id=row.id,
                name=row.name,
                procedure=row.procedure,
                terms=row.terms or behavior_terms(row.name, row.procedure),
                right_count=row.right_count,
                wrong_count=row.wrong_count,
                use_count=row.use_count,
                source_runs=tuple(row.source_runs or ()),
            )
            for row in rows
        ]
    if hot is not None and version is not None:
        hot.put(namespace, version, "behaviors", [b.to_json() for b in found])
    return found


def recall_behaviors(
    memory: Memory, task: str, *, namespace: str, k: int
) -> list[RecalledBehavior]:
    """The ``k`` active behaviors of ``namespace`` most relevant to ``task``, best first.

    Relevance is the idf-weighted share of the task's stems a behavior's terms hold
    (idf over the namespace's behaviors); ties go to the behavior whose uses were more
    often right. A behavior sharing no stem with the task is not recalled.
    """
    if k <= 0:
        return []
    handbook = load_behaviors(memory, namespace)
    if not handbook:
        return []
    stems = list(dict.fromkeys(stem(t) for t in query_terms(task)))
    if not stems:
        return []
    words = [set(b.terms.split()) for b in handbook]
    n = len(handbook)
    weight = {t: math.log(1.0 + n / (1.0 + sum(1 for w in words if t in w))) for t in stems}
    whole = sum(weight.values()) or 1.0
    scored = []
    for behavior, terms in zip(handbook, words, strict=True):
        relevance = sum(w for t, w in weight.items() if t in terms) / whole
        if relevance <= 0:
            continue
        useful = (behavior.right_count + 1) / (behavior.right_count + behavior.wrong_count + 2)
        scored.append((relevance * (0.5 + useful), behavior))
    scored.sort(key=lambda pair: (-pair[0], pair[1].id))
    return [RecalledBehavior(**{**asdict(b), "score": s}) for s, b in scored[:k]]


@dataclass
class MemoryView:
    """What one run's roles read from memory, and which of it reached a prompt.

    Args:
        lessons: ``(id, text)`` of the run's lessons (id ``None`` for lessons passed in).
        behaviors: the behaviors recalled for the run.
        lessons_for: role kinds or names that get the lessons; ``None``: whatever the
            strategy hands a role (the default before issue 13).
        behaviors_for: role kinds or names that get the behaviors.
    """

    lessons: list[tuple[int | None, str]] = field(default_factory=list)
    behaviors: list[RecalledBehavior] = field(default_factory=list)
    lessons_for: Sequence[str] | None = None
    behaviors_for: Sequence[str] = ()
    used_lessons: set[int] = field(default_factory=set)
    used_behaviors: set[int] = field(default_factory=set)

    def vars_for(self, node: str, kind: str, given: list[str] | None) -> dict[str, list[str]]:
        """The ``lessons`` and ``behaviors`` template variables of role instance ``node``."""
        names = {node, kind}
        if self.lessons_for is None:
            lessons = list(given or [])
        else:
            lessons = [text for _id, text in self.lessons] if names & set(self.lessons_for) else []
        behaviors = [b.line for b in self.behaviors] if names & set(self.behaviors_for) else []
        return {"lessons": lessons, "behaviors": behaviors}

    def seen(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """Behavior ids written in ``messages`` (and note the lessons and behaviors used)."""
        if not self.behaviors and not self.lessons:
            return []
        text = "\n".join(str(m.get("content", "")) for m in messages)
        found = [b.id for b in self.behaviors if b.line in text]
        self.used_behaviors.update(found)
        self.used_lessons.update(
            i for i, lesson in self.lessons if i is not None and lesson in text
        )
        return found
