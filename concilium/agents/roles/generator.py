"""Generator: writes a solution to the task and we extract its final answer."""

from __future__ import annotations

from concilium.agents.answers import extract
from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import FORMAT_HINTS, render
from concilium.agents.roles.results import Answer
from concilium.teams import RoleSpec

__all__ = ["generate", "parse_answer"]


def parse_answer(ctx: RunContext, text: str) -> Answer:
    spec = ctx.team.answer
    return Answer(text=text, value=extract(text, spec.format, spec.pattern))


async def generate(
    ctx: RunContext,
    node: str,
    spec: RoleSpec,
    task: str,
    *,
    lessons: list[str] | None = None,
    round: int = 0,
    sample: int = 0,
) -> tuple[Answer, Step]:
    """One solution to ``task``; ``sample`` makes independent samples distinct."""
    messages = render(
        "generator",
        spec.prompt,
        task=task,
        format_hint=FORMAT_HINTS[ctx.team.answer.format],
        lessons=lessons or [],
        round=round,
    )
    result = await ctx.chat(node, spec, messages, kind="generator", sample=sample)
    answer = parse_answer(ctx, result.text)
    step = ctx.step(node=node, role="generator", round=round, messages=messages, result=result,
                    parsed=answer.model_dump(), answer=answer.value)
    return answer, step
