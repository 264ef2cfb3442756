"""Judge: reads the debaters' final solutions and picks the final answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from concilium.agents.answers import extract
from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import FORMAT_HINTS, render
from concilium.agents.roles.results import Judgement
from concilium.teams import RoleSpec, TeamSpec

__all__ = ["judge", "parse_judgement"]


def parse_judgement(team: TeamSpec, text: str, answers: Sequence[dict[str, Any]] = ()) -> Judgement:
    """The judged answer: an answer line, else the one candidate the reply names.

    A judge that names neither (a tiny model rambling) gives ``parsed=False`` and
    no answer, and the graph falls back to the majority.
    """
    value = extract(text, team.answer.format, team.answer.pattern)
    if value is None:
        named = [a for a in answers
                 if re.search(rf"\b{re.escape(str(a['name']))}\b", text, re.IGNORECASE)]
        if len(named) == 1:
            value = named[0].get("value")
    return Judgement(answer=value, text=text, reason=text.strip()[:400], parsed=value is not None)


async def judge(
    ctx: RunContext,
    node: str,
    spec: RoleSpec,
    task: str,
    answers: Sequence[dict[str, Any]],
    *,
    round: int = 0,
    previous: str | None = None,
) -> tuple[Judgement, Step]:
    """Decide between ``answers`` (``{name, text, value}``).

    ``previous`` is the answer the run would give without the judge (the majority);
    the step records the judge's decision as a revision of it, so a judge that
    overrules a right majority shows up as a right->wrong flip.
    """
    messages = render("judge", spec.prompt, task=task,
                      format_hint=FORMAT_HINTS[ctx.team.answer.format], answers=list(answers),
                      round=round, **ctx.memory_vars(node, "judge"))
    result = await ctx.chat(node, spec, messages, kind="judge", round=round)
    decision = parse_judgement(ctx.team, result.text, answers)
    step = ctx.step(node=node, role="judge", round=round, messages=messages, result=result,
                    parsed=decision.model_dump(), answer=decision.answer, previous=previous,
                    revision=previous is not None and decision.answer is not None)
    return decision, step
