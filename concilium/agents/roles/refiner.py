"""Refiner: revises a solution given outside feedback (a verdict or a critique)."""

from __future__ import annotations

from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import FORMAT_HINTS, render
from concilium.agents.roles.generator import parse_answer
from concilium.agents.roles.results import Answer
from concilium.teams import RoleSpec

__all__ = ["refine"]


async def refine(
    ctx: RunContext,
    node: str,
    spec: RoleSpec,
    task: str,
    previous: Answer,
    feedback: str,
    *,
    lessons: list[str] | None = None,
    round: int = 0,
) -> tuple[Answer, Step]:
    """A corrected solution; the step records whether the final answer changed."""
    messages = render(
        "refiner",
        spec.prompt,
        task=task,
        format_hint=FORMAT_HINTS[ctx.team.answer.format],
        lessons=lessons or [],
        answer=previous.text,
        feedback=feedback or "The checker rejected the answer without details.",
        round=round,
    )
    result = await ctx.chat(node, spec, messages, kind="refiner")
    answer = parse_answer(ctx, result.text)
    step = ctx.step(node=node, role="refiner", round=round, messages=messages, result=result,
                    parsed=answer.model_dump(), answer=answer.value, previous=previous.value,
                    revision=True)
    return answer, step
