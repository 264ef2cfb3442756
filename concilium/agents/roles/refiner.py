"""Refiner: revises a solution given outside feedback (a verdict or a critique).

With ``program_aided`` set it writes the corrected solution as an expression or a
program that a tool computes (see :mod:`concilium.agents.roles.program`): after a
calculator rejected the model's own arithmetic, a tiny model that cannot redo the
sum can still transcribe the task into one.
"""

from __future__ import annotations

from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import render
from concilium.agents.roles.program import format_hint, read_answer
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
    template = f"refiner_{spec.program_aided}" if spec.program_aided else "refiner"
    messages = render(
        template,
        spec.prompt,
        task=task,
        format_hint=format_hint(ctx.team, spec),
        **ctx.memory_vars(node, "refiner", lessons),  # issue 13: lessons + behaviors
        answer=previous.text,
        feedback=feedback or "The checker rejected the answer without details.",
        round=round,
    )
    result = await ctx.chat(node, spec, messages, kind="refiner", round=round)
    answer = await read_answer(ctx.team, spec, result.text)
    step = ctx.step(node=node, role="refiner", round=round, messages=messages, result=result,
                    parsed=answer.model_dump(), answer=answer.value, previous=previous.value,
                    revision=True)
    return answer, step
