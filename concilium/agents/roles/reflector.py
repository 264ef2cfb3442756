"""Reflector (Reflexion): turns a failed trial and its feedback into a lesson for the next."""

from __future__ import annotations

import re

from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import FORMAT_HINTS, render
from concilium.agents.roles.results import Answer, Reflection, Verdict
from concilium.teams import RoleSpec

__all__ = ["parse_reflection", "reflect"]

_LABEL = re.compile(r"^\W*reflection\W*", re.IGNORECASE)
MAX_CHARS = 500


def parse_reflection(text: str, fallback: str) -> Reflection:
    """The reflection text, label stripped and trimmed; ``fallback`` when the reply is empty.

    The fallback restates the evaluator's feedback, which is real outside information,
    so a model that says nothing still leaves the next trial something true to use.
    """
    body = _LABEL.sub("", text.strip()).strip()
    if not body:
        return Reflection(text=fallback, parsed=False)
    if len(body) > MAX_CHARS:
        body = body[:MAX_CHARS].rsplit(" ", 1)[0] + "…"
    return Reflection(text=body)


async def reflect(
    ctx: RunContext, node: str, spec: RoleSpec, task: str, answer: Answer, verdict: Verdict,
    *, reflections: list[str] | None = None, round: int = 0,
) -> tuple[Reflection, Step]:
    """A lesson from the failed ``answer`` that ``verdict`` rejected."""
    final = answer.value if answer.value is not None else "(none given)"
    feedback = verdict.feedback or verdict.reason or "no reason was given"
    messages = render("reflector", spec.prompt, task=task,
                      format_hint=FORMAT_HINTS[ctx.team.answer.format], answer=answer.text,
                      final=final, feedback=feedback, reflections=reflections or [], round=round,
                      **ctx.memory_vars(node, "reflector"))
    result = await ctx.chat(node, spec, messages, kind="reflector", round=round)
    found = parse_reflection(result.text, f"The answer {final} was wrong: {feedback}")
    step = ctx.step(node=node, role="reflector", round=round, messages=messages, result=result,
                    parsed=found.model_dump(), answer=answer.value)
    return found, step
