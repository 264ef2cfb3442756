"""Critic: lists concrete issues in a solution (Self-Refine's feedback step)."""

from __future__ import annotations

import re
from typing import Any

from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import render
from concilium.agents.roles.reading import FAULT, SOUND, first_sentence, json_object, tone, tones
from concilium.agents.roles.results import Answer, Critique
from concilium.teams import RoleSpec

__all__ = ["SCHEMA", "critique", "parse_critique"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"issues": {"type": "array", "items": {"type": "string"}}},
    "required": ["issues"],
    "additionalProperties": False,
}
"""The structured output asked of models that support a JSON schema: ``[]`` is no issues."""

_ISSUE = re.compile(r"^[ \t>*\-•\d.)]*\**issue\s*\d*\s*\**\s*[:\-]\s*(.*?)\s*$",
                    re.IGNORECASE | re.MULTILINE)
_NONE = re.compile(r"^\W*no (?:issues|mistakes|errors|problems)\b", re.IGNORECASE | re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"^\W*(?:<[^>]*>|none|n/?a|nothing)?\W*$", re.IGNORECASE)


def parse_critique(text: str) -> Critique:
    """Read the issues: JSON, ``ISSUE:`` lines, ``NO ISSUES``, bullets, then plain praise.

    Only faults are issues: a bullet that praises ("- step 2 is correct") or says
    there is nothing wrong is not one, and neither is an empty or placeholder
    ``ISSUE:`` line. A reply that states no issue and does not plainly praise the
    solution is unreadable (``parsed=False``) and keeps the answer: revising on
    feedback nobody can state tends to make answers worse, not better.
    """
    text = text or ""
    data = json_object(text)
    if data is not None and isinstance(data.get("issues"), list):
        issues = [str(i).strip() for i in data["issues"] if _is_issue(str(i))]
        return Critique(issues=issues[:10], should_change=bool(issues))
    marked = [m.group(1).strip(" \"'") for m in _ISSUE.finditer(text)]
    bullets = [] if marked else [m.group(1) for m in _BULLET.finditer(text)]
    issues = [i for i in marked or bullets if _is_issue(i)]
    if issues:
        return Critique(issues=issues[:10], should_change=True)
    # Only praise or placeholders were listed, or the reply plainly says it is right.
    if marked or bullets or _NONE.search(text) or tone(first_sentence(text)) == SOUND:
        return Critique(issues=[], should_change=False)
    return Critique(issues=[], should_change=False, parsed=False)


def _is_issue(line: str) -> bool:
    """A stated fault: not a placeholder, not praise, not "no issues"."""
    if _PLACEHOLDER.match(line) or _NONE.match(line):
        return False
    found = tones(line)
    return FAULT in found or SOUND not in found


async def critique(
    ctx: RunContext, node: str, spec: RoleSpec, task: str, answer: Answer, *, round: int = 0
) -> tuple[Critique, Step]:
    messages = render("critic", spec.prompt, task=task, answer=answer.text,
                      final=answer.value if answer.value is not None else "(none given)",
                      round=round, **ctx.memory_vars(node, "critic"))
    result = await ctx.chat(node, spec, messages, kind="critic", schema=SCHEMA, round=round)
    found = parse_critique(result.text)
    step = ctx.step(node=node, role="critic", round=round, messages=messages, result=result,
                    parsed=found.model_dump(), answer=answer.value)
    return found, step
