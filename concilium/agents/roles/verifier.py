"""Verifier: accepts or rejects a solution, by asking a model or by a tool check.

A tool check (``check: calculator``) does not share the generator's blind spots,
which is what the self-correction literature says a verifier needs. It reports
each false ``a op b = c`` claim with its true value, and whether the final answer
matches the arithmetic expression in the task, without revealing that value.
"""

from __future__ import annotations

import re
import time
from typing import Any

from concilium.agents.answers import AnswerFormat
from concilium.agents.context import RunContext, Step
from concilium.agents.prompts import render
from concilium.agents.roles.checks import reference_verdict, tests_verdict
from concilium.agents.roles.reading import SOUND, first_sentence, json_object, stated_answer, tone
from concilium.agents.roles.results import Answer, Verdict
from concilium.teams import RoleSpec
from concilium.tools.calculator import CalculatorError, check_claims, evaluate, find_expression

__all__ = ["SCHEMA", "calculator_verdict", "parse_verdict", "verify"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"correct": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["correct", "reason"],
    "additionalProperties": False,
}
"""The structured output asked of models that support a JSON schema."""

_VERDICT_LINE = re.compile(r"verdict\s*[:=]?\s*\**\s*([^\n]*)", re.IGNORECASE)
# "No, ..." answers the question; "No errors ..." / "No problem" praises (read by tone).
_YES_NO = re.compile(r"^\W*(yes|no)\b(?![ \t]+(?:\w+[ \t]+)?(?:errors?|mistakes?|issues?|"
                     r"problems?|flaws?|faults?|wrong)\b)", re.IGNORECASE)
_BOOL_WORDS = {"yes": True, "accept": True, "accepted": True, "no": False, "reject": False,
               "rejected": False}


def parse_verdict(text: str, final: str | None = None) -> Verdict:
    """Read a verdict: JSON, a ``VERDICT:`` line, a yes/no, the reply's own answer, words.

    In that order of trust. ``final`` is the answer under review: a reply that gives
    an answer of its own ("The correct answer is 23.") accepts it if the two agree
    and rejects it otherwise. Negations are read as such: "no error" accepts. A reply
    none of these can read accepts with ``parsed=False`` (no feedback, no revision).
    """
    text = text or ""
    reason = text.strip()[:400]
    data = json_object(text)
    if data is not None and isinstance(data.get("correct"), bool):
        why = str(data.get("reason") or "")[:400]
        return Verdict(accepted=data["correct"], reason=why,
                       feedback="" if data["correct"] else why)
    line = _VERDICT_LINE.search(text)
    if line is not None:
        said = line.group(1).strip(" .:-*\"'")
        word = said.split()[0].lower().strip(".,;:!") if said else ""
        judged = _BOOL_WORDS.get(word)
        if judged is None:
            found = tone(said)
            judged = None if found is None else found == SOUND
        if judged is not None:
            rest = (said[len(word):] if word in _BOOL_WORDS else said) + text[line.end():]
            why = rest.strip(" .:-*\n")[:400] or reason
            return _verdict(judged, why)
    yes_no = _YES_NO.match(text)
    if yes_no is not None:
        return _verdict(yes_no.group(1).lower() == "yes", reason)
    opening = tone(first_sentence(text))
    if opening is not None:
        return _verdict(opening == SOUND, reason)
    own = stated_answer(text)
    if own is not None and final is not None:
        from concilium.agents.answers import same

        if same(own, final):
            return _verdict(True, reason)
        return _verdict(False, f"the verifier's own answer is {own}, not {final}: {reason}"[:400])
    anywhere = tone(text)
    if anywhere is not None:
        return _verdict(anywhere == SOUND, reason)
    return Verdict(accepted=True, reason="verdict not understood", parsed=False)


def _verdict(accepted: bool, reason: str) -> Verdict:
    return Verdict(accepted=accepted, reason=reason, feedback="" if accepted else reason)


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
                      round=round, **ctx.memory_vars(node, "verifier"))
    result = await ctx.chat(node, spec, messages, kind="verifier", schema=SCHEMA, round=round)
    number = ctx.team.answer.format == "number"  # a stated answer is compared as a number
    verdict = parse_verdict(result.text, answer.value if number else None)
    step = ctx.step(node=node, role="verifier", round=round, messages=messages, result=result,
                    parsed=verdict.model_dump(), answer=answer.value)
    return verdict, step
