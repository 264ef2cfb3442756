"""Moderator (MAD): after each round, says whether one side is clearly right."""

from __future__ import annotations

import re

from concilium.agents.answers import extract
from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import FORMAT_HINTS, render
from concilium.agents.roles.results import Answer, ModeratorDecision
from concilium.teams import RoleSpec, TeamSpec

__all__ = ["moderate", "parse_decision"]

_SIDE = r"(affirmative|negative|none|neither|no one|nobody|undecided|tie)"
_WINNER = re.compile(rf"(?:winner|supported side|preference)\s*[:=]?\s*\**\s*{_SIDE}", re.I)


def parse_decision(team: TeamSpec, text: str) -> ModeratorDecision:
    """Read ``WINNER: affirmative|negative|none``; anything unreadable lets the debate go on.

    Going on is the safe default: the debate is bounded by its round limit, and a
    judge decides at the end.
    """
    match = _WINNER.search(text)
    reason = text[match.end():].strip(" .:-*\n")[:400] if match else text.strip()[:400]
    answer = extract(text, team.answer.format, team.answer.pattern) if match else None
    if match is None:
        return ModeratorDecision(stop=False, reason=reason, parsed=False)
    side = match.group(1).lower()
    if side not in ("affirmative", "negative"):
        return ModeratorDecision(stop=False, reason=reason)
    return ModeratorDecision(stop=True, winner=side, answer=answer, reason=reason)  # type: ignore[arg-type]


async def moderate(
    ctx: RunContext, node: str, spec: RoleSpec, task: str, affirmative: Answer,
    negative: Answer, *, round: int = 0,
) -> tuple[ModeratorDecision, Step]:
    """The moderator's call on one round."""
    messages = render("moderator", spec.prompt, task=task,
                      format_hint=FORMAT_HINTS[ctx.team.answer.format],
                      affirmative=affirmative.text, negative=negative.text, round=round,
                      **ctx.memory_vars(node, "moderator"))
    result = await ctx.chat(node, spec, messages, kind="moderator", round=round)
    decision = parse_decision(ctx.team, result.text)
    step = ctx.step(node=node, role="moderator", round=round, messages=messages, result=result,
                    parsed=decision.model_dump(), answer=decision.answer)
    return decision, step
