"""Lessons and behaviors earn their place: measured usefulness, automatic quarantine.

Usefulness of an item (a lesson or a behavior) is the accuracy of the runs that
put it in a prompt minus the accuracy of *comparable* runs that did not: runs of
the same team and namespace with a known outcome. Each ``(team, namespace)`` pair
in which the item was used contributes its runs to both sides, so a team that
never met the item does not dilute the baseline.

The quarantine rule (``QUARANTINE_RULE``): once the item has at least
``MIN_USES`` scored uses and the baseline at least ``MIN_BASELINE`` runs, it is
quarantined when the upper end of the 99% Newcombe hybrid score interval for the
difference of the two proportions (built from the two Wilson intervals, Newcombe
1998, method 10) is below zero: runs that used it are *reliably* less often right.
99% rather than 95% because the rule is re-checked after every use (repeated looks
inflate false alarms). A quarantined item is kept with its reason, never recalled,
and ``concilium memory restore`` brings it back; nothing is deleted.

Caveat, said plainly: this is observational. Runs that recall a lesson are runs on
tasks resembling the lesson's, which may be harder than the team's average task;
the rule needs the gap to be large and consistent, not merely present.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, and_, cast, func, select, update

from concilium.memory.db import insert_once
from concilium.memory.models import Behavior, MemoryUse, Reflection, RunRow, utcnow

if TYPE_CHECKING:
    from concilium.memory.store import Memory

__all__ = [
    "KINDS",
    "MIN_BASELINE",
    "MIN_USES",
    "QUARANTINE_RULE",
    "Usefulness",
    "newcombe",
    "quarantine",
    "record_uses",
    "restore",
    "review",
    "usefulness",
    "wilson",
]

KINDS = ("lesson", "behavior")
MIN_USES = 10
"""Scored uses an item needs before the rule may quarantine it."""
MIN_BASELINE = 10
"""Comparable runs without the item the rule needs."""
Z = 2.576
"""99% two-sided."""
QUARANTINE_RULE = (
    f"quarantined when, after >= {MIN_USES} scored uses and >= {MIN_BASELINE} "
    "comparable runs without it, the 99% Newcombe-Wilson interval of "
    "(accuracy with - accuracy without) lies entirely below 0"
)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k/n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k0: int, n0: int, z: float = Z) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``k1/n1 - k0/n0`` (from two Wilson intervals)."""
    p1, p0 = (k1 / n1 if n1 else 0.0), (k0 / n0 if n0 else 0.0)
    l1, u1 = wilson(k1, n1, z)
    l0, u0 = wilson(k0, n0, z)
    d = p1 - p0
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2),
    )


@dataclass(frozen=True)
class Usefulness:
    """How runs that used an item fared against comparable runs that did not."""

    kind: str
    id: int
    right_with: int
    runs_with: int
    right_without: int
    runs_without: int

    @property
    def accuracy_with(self) -> float | None:
        return self.right_with / self.runs_with if self.runs_with else None

    @property
    def accuracy_without(self) -> float | None:
        return self.right_without / self.runs_without if self.runs_without else None

    @property
    def difference(self) -> float | None:
        """Accuracy with minus without; ``None`` until both sides have runs."""
        if not self.runs_with or not self.runs_without:
            return None
        return self.right_with / self.runs_with - self.right_without / self.runs_without

    @property
    def interval(self) -> tuple[float, float] | None:
        if not self.runs_with or not self.runs_without:
            return None
        return newcombe(self.right_with, self.runs_with, self.right_without, self.runs_without)

    @property
    def harmful(self) -> bool:
        """The quarantine rule (:data:`QUARANTINE_RULE`)."""
        interval = self.interval
        return (
            self.runs_with >= MIN_USES
            and self.runs_without >= MIN_BASELINE
            and interval is not None
            and interval[1] < 0
        )

    def summary(self) -> str:
        """``3/10 right with vs 9/10 without (-60 pts, 99% CI -90..-20)``."""
        text = (
            f"{self.right_with}/{self.runs_with} right with vs "
            f"{self.right_without}/{self.runs_without} without"
        )
        if self.difference is not None and self.interval is not None:
            low, high = self.interval
            text += (
                f" ({self.difference * 100:+.0f} pts, 99% CI {low * 100:+.0f}..{high * 100:+.0f})"
            )
        return text


def record_uses(
    conn: Any,
    ids: Sequence[int],
    correct: bool | None,
    *,
    behaviors: Sequence[int] = (),
    run_id: str | None = None,
    team: str | None = None,
    namespace: str | None = None,
) -> None:
    """Count one run's uses (in the caller's transaction): counters, and ``memory_uses`` rows.

    The rows are written once per (run, item): a retried or resumed write counts once.
    """
    now = utcnow()
    if ids:
        values: dict[str, Any] = {"use_count": Reflection.use_count + 1, "last_used_at": now}
        if correct is True:
            values["success_count"] = Reflection.success_count + 1
        elif correct is False:
            values["failure_count"] = Reflection.failure_count + 1
        conn.execute(update(Reflection).where(Reflection.id.in_(list(ids))).values(**values))
    if behaviors:
        values = {"use_count": Behavior.use_count + 1, "last_used_at": now}
        if correct is True:
            values["right_count"] = Behavior.right_count + 1
        elif correct is False:
            values["wrong_count"] = Behavior.wrong_count + 1
        conn.execute(update(Behavior).where(Behavior.id.in_(list(behaviors))).values(**values))
    if run_id is None:
        return
    rows = [
        {
            "run_id": run_id,
            "kind": kind,
            "item_id": int(i),
            "team": team,
            "namespace": namespace,
            "correct": correct,
            "at": now,
        }
        for kind, items in (("lesson", ids), ("behavior", behaviors))
        for i in items
    ]
    if rows:
        from concilium.memory.db import driver_sql

        dialect = conn.dialect.name
        columns = ("run_id", "kind", "item_id", "team", "namespace", "correct", "at")
        sql = (
            f"INSERT INTO memory_uses ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + c for c in columns)})"
        )
        if dialect == "sqlite":
            for row in rows:  # the driver stores SQLite times as SQLAlchemy reads them back
                row["at"] = row["at"].strftime("%Y-%m-%d %H:%M:%S.%f")
        conn.exec_driver_sql(driver_sql(insert_once(sql, dialect), dialect), rows)


def usefulness(memory: Memory, kind: str, item_id: int) -> Usefulness:
    """The item's runs with it vs comparable runs without it (see the module doc)."""
    with memory.db.session() as session:
        return _usefulness(session, kind, item_id)


def _usefulness(session: Any, kind: str, item_id: int) -> Usefulness:
    used = (MemoryUse.kind == kind) & (MemoryUse.item_id == item_id)
    strata = session.execute(
        select(
            MemoryUse.team,
            MemoryUse.namespace,
            func.count(),
            func.sum(cast(MemoryUse.correct, Integer)),
        )
        .where(used, MemoryUse.correct.is_not(None))
        .group_by(MemoryUse.team, MemoryUse.namespace)
    ).all()
    right_with = runs_with = right_without = runs_without = 0
    users = select(MemoryUse.run_id).where(used)
    for team, namespace, n, k in strata:
        runs_with += int(n)
        right_with += int(k or 0)
        n0, k0 = session.execute(
            select(func.count(), func.sum(cast(RunRow.correct, Integer))).where(
                and_(
                    RunRow.team == team,
                    RunRow.namespace == namespace,
                    RunRow.correct.is_not(None),
                    RunRow.id.not_in(users),
                )
            )
        ).one()
        runs_without += int(n0)
        right_without += int(k0 or 0)
    return Usefulness(kind, item_id, right_with, runs_with, right_without, runs_without)


def review(memory: Memory, items: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Quarantine the ``(kind, id)`` items the rule finds harmful; returns those quarantined."""
    items = list(dict.fromkeys(items))
    if not items:
        return []
    with memory.db.session() as session:
        found = [_usefulness(session, kind, i) for kind, i in items]
    done = []
    for stats in found:
        if stats.harmful and quarantine(
            memory, stats.kind, stats.id, f"automatic: {stats.summary()}", only_active=True
        ):
            done.append((stats.kind, stats.id))
    return done


def _table(kind: str) -> Any:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return Reflection if kind == "lesson" else Behavior


def quarantine(
    memory: Memory, kind: str, item_id: int, reason: str, *, only_active: bool = False
) -> bool:
    """Stop recalling an item (kept, with ``reason``); ``False`` if there is no such item."""
    return _set(memory, kind, item_id, True, reason, only_active)


def restore(memory: Memory, kind: str, item_id: int) -> bool:
    """Recall a quarantined item again; ``False`` if there is no such item."""
    return _set(memory, kind, item_id, False, None, False)


def _set(
    memory: Memory, kind: str, item_id: int, on: bool, reason: str | None, only_active: bool
) -> bool:
    table = _table(kind)
    query = (
        update(table)
        .where(table.id == item_id)
        .values(quarantined=on, quarantined_at=utcnow() if on else None, quarantine_reason=reason)
        .returning(table.namespace)
    )
    if only_active:
        query = query.where(table.quarantined.is_(False))
    with memory.db.write() as session:
        namespace = session.execute(query).scalar_one_or_none()
    if namespace is None:
        return False
    if memory.hot is not None:  # every process stops (or starts) recalling it at once
        memory.hot.bump(namespace)
    return True
