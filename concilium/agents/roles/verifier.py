"""Verifier: accepts or rejects a solution, by asking a model or by a tool check.

A tool check (``check: calculator``) does not share the generator's blind spots,
which is what the self-correction literature says a verifier needs. It reports
each false ``a op b = c`` claim with its true value, and whether the final answer
matches the arithmetic expression in the task, without revealing that value.
"""

from __future__ import annotations

import re
import time

from concilium.agents.answers import AnswerFormat
from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import render
from concilium.agents.roles.checks import reference_verdict, tests_verdict
from concilium.agents.roles.results import Answer, Verdict
from concilium.teams import RoleSpec
from concilium.tools.calculator import CalculatorError, check_claims, evaluate, find_expression

__all__ = ["calculator_verdict", "parse_verdict", "verify"]

_VERDICT_RE = re.compile(
    r"verdict\s*[:=]?\s*\**\s*(incorrect|correct|rejected|reject|accepted|accept|wrong|right|no|yes)",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(r"\b(incorrect|not correct|wrong|reject(?:ed)?|mistake|error)\b", re.I)
_POSITIVE = re.compile(r"\b(correct|right|accept(?:ed)?|valid)\b", re.I)


def parse_verdict(text: str) -> Verdict:
    """Read a verdict from free text. Unreadable text accepts: no feedback, no revision."""
    match = _VERDICT_RE.search(text)
    if match:
        accepted = match.group(1).lower() in {"correct", "accept", "accepted", "right", "yes"}
        rest = text[match.end():].strip(" .:-*\n")
        return Verdict(accepted=accepted, reason=rest[:400], feedback=rest[:400])
    if _NEGATIVE.search(text):
        return Verdict(accepted=False, reason=text.strip()[:400], feedback=text.strip()[:400])
    if _POSITIVE.search(text):
        return Verdict(accepted=True, reason=text.strip()[:400])
    return Verdict(accepted=True, reason="verdict not understood", parsed=False)


def calculator_verdict(task: str, answer: Answer, fmt: AnswerFormat = "number") -> Verdict:
    """Check a solution's arithmetic and its final answer with the safe calculator."""
    from concilium.agents.answers import same

    claims = check_claims(answer.text)
    problems = [c.describe() for c in claims if not c.correct]
    expression = find_expression(task)
    if answer.value is None:
        problems.append("the solution has no final answer line ('Answer: <number>')")
    elif expression is not None:
        try:
            expected = evaluate(expression)
        except CalculatorError:
            expected = None
        if expected is not None and not same(answer.value, str(expected), fmt):
            problems.append(f"the final answer {answer.value} is not the value of {expression}")
    checked = bool(claims) or expression is not None
    if problems:
        reason = "calculator found: " + "; ".join(problems)
        return Verdict(accepted=False, reason=reason, feedback=reason, checked_by="calculator")
    reason = (f"{len(claims)} calculation(s) check out" if checked else "nothing to check")
    return Verdict(accepted=True, reason=reason, checked_by="calculator", checked=checked)


async def verify(
    ctx: RunContext, node: str, spec: RoleSpec, task: str, answer: Answer, *, round: int = 0,
    tests: str | None = None,
) -> tuple[Verdict, Step]:
    """A verdict on ``answer``: a tool check if the role says so, else a model call.

    ``tests`` is test code for ``check: tests`` (default: the tests written in the task).
    """
    if spec.check in ("calculator", "tests", "reference"):
        start = time.perf_counter()
        fmt = ctx.team.answer.format
        if spec.check == "calculator":
            verdict = calculator_verdict(task, answer, fmt)
        elif spec.check == "tests":
            verdict = await tests_verdict(task, answer, tests)
        else:
            shown = ctx.reference if ctx.reveal_reference else None
            verdict = reference_verdict(answer, shown, fmt, ctx.team.answer.tolerance)
        step = ctx.step(node=node, role="verifier", round=round, output=verdict.reason,
                        parsed=verdict.model_dump(), answer=answer.value, tool=spec.check,
                        latency_ms=(time.perf_counter() - start) * 1000.0)
        return verdict, step
    messages = render("verifier", spec.prompt, task=task, answer=answer.text,
                      final=answer.value if answer.value is not None else "(none given)",
                      round=round)
    result = await ctx.chat(node, spec, messages, kind="verifier")
    verdict = parse_verdict(result.text)
    step = ctx.step(node=node, role="verifier", round=round, messages=messages, result=result,
                    parsed=verdict.model_dump(), answer=answer.value)
    return verdict, step
