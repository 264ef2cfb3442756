"""Generator: writes a solution to the task and we extract its final answer.

With ``program_aided`` set, it writes an expression or a program instead, and a
tool computes the answer (see :mod:`concilium.agents.roles.program`).
"""

from __future__ import annotations

from concilium.agents.answers import extract
from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import render
from concilium.agents.roles.program import format_hint, read_answer
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
    reflections: list[str] | None = None,
    round: int = 0,
    sample: int = 0,
    previous: str | None = None,
    revision: bool = False,
) -> tuple[Answer, Step]:
    """One solution to ``task``.

    Args:
        ctx: the run context.
        node: the graph node (role instance) making the call.
        spec: the role's spec.
        task: the task text.
        lessons: lessons recalled from earlier tasks.
        reflections: what earlier failed trials of this task taught (reflexion).
        round: the strategy's round, for the ledger.
        sample: makes independent samples distinct (their own seed).
        previous: the answer this one replaces, when it is a new trial (``revision``).
        revision: record whether this answer changed (and flipped) ``previous``.
    """
    template = f"generator_{spec.program_aided}" if spec.program_aided else "generator"
    messages = render(
        template,
        spec.prompt,
        task=task,
        format_hint=format_hint(ctx.team, spec),
        **ctx.memory_vars(node, "generator", lessons),  # issue 13: lessons + behaviors
        reflections=reflections or [],
        round=round,
    )
    result = await ctx.chat(node, spec, messages, kind="generator", sample=sample,
                            round=round)
    answer = await read_answer(ctx.team, spec, result.text)
    step = ctx.step(node=node, role="generator", round=round, messages=messages, result=result,
                    parsed=answer.model_dump(), answer=answer.value, previous=previous,
                    revision=revision)
    return answer, step
