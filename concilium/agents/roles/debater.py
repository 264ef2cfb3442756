"""Debater: answers, then revises after reading the other debaters (or the other side).

One module serves both debate forms: in the simultaneous form (Du et al.) a
debater sees every other debater's previous solution; in the adversarial form
(MAD) it argues one ``side`` against its ``opponent``'s last argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import render
from concilium.agents.roles.program import format_hint, read_answer
from concilium.agents.roles.results import Answer
from concilium.teams import RoleSpec

__all__ = ["argue"]


async def argue(
    ctx: RunContext,
    node: str,
    spec: RoleSpec,
    task: str,
    *,
    own: Answer | None = None,
    others: Sequence[dict[str, Any]] = (),
    side: str = "",
    opponent: str = "",
    lessons: list[str] | None = None,
    round: int = 0,
    sample: int = 0,
) -> tuple[Answer, Step]:
    """One debate turn.

    Args:
        ctx: the run context.
        node: the debater's name (its role instance).
        spec: the debater's spec (each debater may call a different model).
        task: the task text.
        own: this debater's previous answer; its new one is recorded as a revision of it.
        others: the other debaters' previous answers, as ``{name, text, value}``.
        side: ``affirmative`` or ``negative`` in an adversarial debate.
        opponent: the other side's last argument.
        lessons: lessons recalled from earlier tasks.
        round: the debate round, for the ledger.
        sample: keeps debaters' calls distinct (their own seed).
    """
    messages = render(
        "debater",
        spec.prompt,
        task=task,
        format_hint=format_hint(ctx.team, spec),
        **ctx.memory_vars(node, "debater", lessons),  # issue 13: lessons + behaviors
        round=round,
        answer=own.text if own is not None else "",
        others=list(others),
        side=side,
        opponent=opponent,
    )
    result = await ctx.chat(node, spec, messages, kind="debater", sample=sample,
                            round=round)
    answer = await read_answer(ctx.team, spec, result.text)
    step = ctx.step(node=node, role="debater", round=round, messages=messages, result=result,
                    parsed=answer.model_dump(), answer=answer.value,
                    previous=own.value if own is not None else None, revision=own is not None)
    return answer, step
