"""Critic: lists concrete issues in a solution (Self-Refine's feedback step)."""

from __future__ import annotations

import re

from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import render
from concilium.agents.roles.results import Answer, Critique
from concilium.teams import RoleSpec

__all__ = ["critique", "parse_critique"]

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)
_NONE = re.compile(r"\bno (?:issues|mistakes|errors|problems)\b", re.IGNORECASE)


def parse_critique(text: str) -> Critique:
    """Bullets are issues; "NO ISSUES" means keep the answer.

    Anything else is unreadable and keeps the answer too: revising on feedback
    nobody can state tends to make answers worse, not better.
    """
    issues = [m.group(1) for m in _BULLET.finditer(text) if not _NONE.search(m.group(1))]
    if issues:
        return Critique(issues=issues[:10], should_change=True)
    if _NONE.search(text):
        return Critique(issues=[], should_change=False)
    return Critique(issues=[], should_change=False, parsed=False)


async def critique(
    ctx: RunContext, node: str, spec: RoleSpec, task: str, answer: Answer, *, round: int = 0
) -> tuple[Critique, Step]:
    messages = render("critic", spec.prompt, task=task, answer=answer.text,
                      final=answer.value if answer.value is not None else "(none given)",
                      round=round)
    result = await ctx.chat(node, spec, messages, kind="critic")
    found = parse_critique(result.text)
    step = ctx.step(node=node, role="critic", round=round, messages=messages, result=result,
                    parsed=found.model_dump(), answer=answer.value)
    return found, step
