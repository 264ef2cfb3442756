"""Counting answers: the majority rule shared by self-consistency, debate and custom graphs.

Answers are grouped with the team's own notion of "the same answer" (numbers within
tolerance, normalised text), so ``1,300`` and ``1300.0`` are one vote. Replies
without an answer abstain. Ties go to the answer given first (lowest sample or
debater index), so a vote never depends on which parallel call finished first.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Any

from concilium.agents.answers import same
from concilium.spec import TeamSpec

__all__ = ["leader_confidence", "majority", "tally"]


def tally(team: TeamSpec, values: Sequence[str | None]) -> list[tuple[str, int]]:
    """``(answer, votes)`` pairs, most votes first; ties in order of first appearance."""
    groups: list[list[Any]] = []  # [value, votes, first index]
    for index, value in enumerate(values):
        if value is None:
            continue
        for group in groups:
            if same(group[0], value, team.answer.format, team.answer.tolerance):
                group[1] += 1
                break
        else:
            groups.append([value, 1, index])
    groups.sort(key=lambda g: (-g[1], g[2]))
    return [(g[0], g[1]) for g in groups]


def majority(
    team: TeamSpec, answers: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """The winning answer dict (the first one that gave the winning value) and the tally.

    With no answer at all, the first answer dict is returned (its value is ``None``).
    """
    ranking = tally(team, [a.get("value") for a in answers])
    if not ranking:
        return dict(answers[0]) if answers else {"text": "", "value": None}, ranking
    winner = next(a for a in answers if a.get("value") is not None and same(
        a["value"], ranking[0][0], team.answer.format, team.answer.tolerance))
    return dict(winner), ranking


def leader_confidence(ranking: Sequence[tuple[str, int]]) -> float:
    """P(the leader is the true majority over the runner-up) under a uniform Beta prior.

    With ``a`` votes for the leader and ``b`` for the runner-up, the leader's share
    ``p`` of the two has posterior Beta(a + 1, b + 1), and P(p > 1/2) is a binomial
    tail (Adaptive-Consistency's stopping rule), computed exactly.
    """
    if not ranking:
        return 0.0
    a = ranking[0][1] + 1
    b = (ranking[1][1] if len(ranking) > 1 else 0) + 1
    n = a + b - 1
    return sum(comb(n, j) for j in range(a)) / 2**n
