"""A role kind a team file declares (``kinds:``): its prompt, one call, its declared output.

A team adds a kind without Python: ``kinds: {fact_checker: {prompt: {system, user},
output: verdict}}``, then uses it like any kind (``checker: {role: fact_checker}``)
as a node of a custom graph. The reply is read by the parser of what the kind
declares it gives:

- ``text`` — kept as written (the node's result, for later prompts and the ledger);
- ``answer`` — a solution whose final answer is extracted, like a generator's;
- ``verdict`` — accept or reject with a reason, like a verifier's (a rejection is
  feedback for a refiner);
- ``critique`` — a list of issues, like a critic's.

Its templates see :data:`~concilium.agents.prompts.DECLARED_VARIABLES`; a role of the
kind may override them with its own ``prompt:``, and a person may play it
(``role: human, plays: fact_checker``).
"""

from __future__ import annotations

from typing import Any

from concilium.agents.answers import extract
from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import FORMAT_HINTS, render
from concilium.agents.roles.critic import SCHEMA as CRITIQUE_SCHEMA
from concilium.agents.roles.critic import parse_critique
from concilium.agents.roles.results import Answer
from concilium.agents.roles.verifier import SCHEMA as VERDICT_SCHEMA
from concilium.agents.roles.verifier import parse_verdict
from concilium.teams import KindSpec, PromptSpec, RoleSpec

__all__ = ["perform"]

_SCHEMAS = {"verdict": VERDICT_SCHEMA, "critique": CRITIQUE_SCHEMA}


def _templates(kind: KindSpec, spec: RoleSpec) -> PromptSpec:
    """The role's own templates where it has them, else its kind's."""
    own = spec.prompt or PromptSpec()
    return PromptSpec(
        system=own.system if own.system is not None else kind.prompt.system or "",
        user=own.user if own.user is not None else kind.prompt.user or "{{ task }}",
    )


async def perform(
    ctx: RunContext,
    node: str,
    spec: RoleSpec,
    name: str,
    task: str,
    *,
    answer: Answer,
    feedback: str = "",
    answers: list[dict[str, Any]] | None = None,
    notes: list[dict[str, Any]] | None = None,
    lessons: list[str] | None = None,
    round: int = 0,
) -> tuple[dict[str, Any], Step]:
    """One call of declared kind ``name`` for node ``node``.

    Returns:
        ``(parsed, step)``: ``parsed`` is ``{"text": ...}``, an
        :class:`~concilium.agents.roles.results.Answer`, a ``Verdict`` or a
        ``Critique`` as a dict, as the kind's ``output`` says.
    """
    kind = ctx.team.kinds[name]
    fmt = ctx.team.answer
    messages = render(
        name,
        _templates(kind, spec),
        task=task,
        format_hint=FORMAT_HINTS[fmt.format],
        lessons=lessons or [],
        round=round,
        answer=answer.text,
        final=answer.value if answer.value is not None else "(none given)",
        feedback=feedback,
        answers=list(answers or []),
        notes=list(notes or []),
    )
    result = await ctx.chat(node, spec, messages, kind=name, schema=_SCHEMAS.get(kind.output))
    text = result.text
    parsed: dict[str, Any]
    value = answer.value
    if kind.output == "answer":
        new = Answer(text=text, value=extract(text, fmt.format, fmt.pattern))
        parsed, value = new.model_dump(), new.value
    elif kind.output == "verdict":
        verdict = parse_verdict(text, answer.value if fmt.format == "number" else None)
        parsed = verdict.model_dump()
    elif kind.output == "critique":
        parsed = parse_critique(text).model_dump()
    else:
        parsed = {"text": text}
    step = ctx.step(
        node=node,
        role=name,
        round=round,
        messages=messages,
        result=result,
        parsed=parsed,
        answer=value,
        previous=answer.value,
        revision=kind.output == "answer" and answer.value is not None,
    )
    return parsed, step
