"""Statistics for evaluations: accuracy intervals, paired tests, and per-team summaries.

Small samples are the norm (50 items of a 2-core run), so the interval is
Wilson's, which stays inside [0, 1] and is honest at 0 % and 100 %, and two
teams are compared *paired* on the same items with McNemar's test, exact
(binomial) when the discordant count is small. Both are a few lines of
``math``; no SciPy needed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

__all__ = [
    "COMPLETED",
    "McNemar",
    "compare",
    "completed",
    "mcnemar",
    "percentile",
    "summarize_team",
    "wilson",
]

Z95 = 1.959963984540054
EXACT_BELOW = 25
"""McNemar is exact (binomial) when fewer than this many items are discordant."""


def wilson(correct: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of ``correct / total`` (95 % by default); ``None`` for no items.

    Example:
        >>> wilson(5, 10)
        (0.2365..., 0.7634...)
    """
    if total <= 0:
        return None
    p = correct / total
    z2 = z * z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    # the exact ends at 0/n and n/n, not 1e-17 away from them
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired outcomes: does team A differ from team B on the same items?"""

    a_only: int
    """Items A got right and B got wrong."""
    b_only: int
    """Items B got right and A got wrong."""
    p_value: float
    method: str
    """``exact`` (binomial) or ``chi2`` (with continuity correction)."""


def mcnemar(a_only: int, b_only: int) -> McNemar:
    """Two-sided McNemar test from the discordant counts.

    Exact: ``p = min(1, 2 · P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``;
    from :data:`EXACT_BELOW` discordant items on, the chi-square approximation
    ``(|b - c| - 1)^2 / (b + c)`` with one degree of freedom.

    Example:
        >>> mcnemar(0, 6).p_value
        0.03125
    """
    n = a_only + b_only
    if n == 0:
        return McNemar(a_only, b_only, 1.0, "exact")
    if n < EXACT_BELOW:
        k = min(a_only, b_only)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return McNemar(a_only, b_only, min(1.0, 2.0 * tail), "exact")
    statistic = (abs(a_only - b_only) - 1) ** 2 / n
    return McNemar(a_only, b_only, math.erfc(math.sqrt(statistic / 2.0)), "chi2")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


COMPLETED = frozenset({"ok", "stopped", "timeout"})
"""Statuses of items the team itself finished: its answer, or its own budget or time ran out."""


def completed(record: Mapping[str, Any]) -> bool:
    """Whether the team finished the item (``failed``/``error``: the infrastructure did not)."""
    return str(record.get("status", "ok")) in COMPLETED


def summarize_team(records: Sequence[Mapping[str, Any]], selected: int) -> dict[str, Any]:
    """Accuracy, cost, latency and flips of one team's item records.

    Accuracy is over the items the team *completed*: a budget stop or an item
    timeout is the team's own (wrong) answer, but a model that failed after its
    retries and re-queues (``failed``) or a crashed item run (``error``) says
    nothing about the team, so those are counted in ``failed`` and not graded.
    ``revisions`` counts revised answers (refiner, debater turns); flips are among them.
    """
    done = len(records)
    finished = [r for r in records if completed(r)]
    correct = sum(1 for r in finished if r.get("correct"))
    latencies = [float(r.get("wall_ms", 0.0)) for r in records]
    interval = wilson(correct, len(finished))
    flips = {
        key: sum(int((r.get("flips") or {}).get(key, 0)) for r in records)
        for key in ("right->wrong", "wrong->right", "changed")
    }
    return {
        "items": selected,
        "done": done,
        "completed": len(finished),
        "failed": done - len(finished),
        "correct": correct,
        "accuracy": correct / len(finished) if finished else None,
        "accuracy_ci95": list(interval) if interval else None,
        "requeued": sum(int(r.get("requeued", 0)) for r in records),
        "mean_llm_calls": _mean(r.get("llm_calls", 0) for r in records),
        "mean_tokens": _mean(r.get("total_tokens", 0) for r in records),
        "total_tokens": sum(int(r.get("total_tokens", 0)) for r in records),
        "total_cost": sum(float(r.get("cost", 0.0)) for r in records),
        "retries": sum(int(r.get("retries", 0)) for r in records),
        "fallbacks": sum(int(r.get("fallbacks", 0)) for r in records),
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "mean": _mean(latencies),
        },
        "revisions": sum(int(r.get("revisions", 0)) for r in records),
        "items_with_lessons": sum(1 for r in records if r.get("lessons_recalled")),
        "lessons_stored": sum(int(r.get("lessons_stored", 0)) for r in records),
        "flips": flips,
        "status": dict(Counter(str(r.get("status", "ok")) for r in records)),
    }


def compare(
    outcomes: Mapping[str, Mapping[str, bool]], alpha: float = 0.05
) -> list[dict[str, Any]]:
    """McNemar for every pair of teams, on the items both have a result for.

    Args:
        outcomes: team name -> item key -> correct, for the items the team completed
            (leave out failed items: an outage of one team is not the other's win).
        alpha: the significance level the ``significant`` flag uses.
    """
    rows = []
    for a, b in combinations(outcomes, 2):
        shared = outcomes[a].keys() & outcomes[b].keys()
        a_only = sum(1 for k in shared if outcomes[a][k] and not outcomes[b][k])
        b_only = sum(1 for k in shared if outcomes[b][k] and not outcomes[a][k])
        test = mcnemar(a_only, b_only)
        rows.append({"a": a, "b": b, "items": len(shared), **asdict(test),
                     "significant": test.p_value < alpha})
    return rows


def _mean(values: Iterable[float]) -> float | None:
    items = [float(v) for v in values]
    return sum(items) / len(items) if items else None
