"""Program-aided answers (PAL / program-of-thought): the model writes, a tool computes.

A tiny model that cannot multiply can often still *transcribe* a word problem into
``74 * 18 - 32``. With ``program_aided: expression`` on a generator (or debater)
the reply's expression is evaluated by the safe calculator; with
``program_aided: python`` its program runs in the sandbox. What it evaluates to,
or the last line it prints, becomes the final answer, and the program is kept in
:attr:`Answer.program` (so in the step's ``parsed`` record). The answer's text is
the program and its result, so later roles judge what was computed, not the
model's own (often wrong) arithmetic around it; the raw reply stays in the step.

Reading never raises: a reply with no program falls back to ordinary answer
extraction, and a program that fails gives no answer, with the error in the text.
"""

from __future__ import annotations

import re

from concilium.agents.answers import extract
from concilium.agents.prompts import FORMAT_HINTS
from concilium.agents.roles.results import Answer
from concilium.spec import RoleSpec, TeamSpec
from concilium.tools.calculator import CalculatorError, evaluate, find_expression
from concilium.tools.sandbox import run_python

__all__ = ["PROGRAM_HINTS", "find_program", "format_hint", "read_answer"]

PROGRAM_HINTS: dict[str, str] = {
    "expression": "Do not compute the result yourself: finish with a last line of the form "
                  "'Expression: <arithmetic expression>' using numbers, + - * / and parentheses.",
    "python": "Do not compute the result yourself: write a short Python program in one "
              "```python block that prints the final answer with print().",
}

_EXPRESSION_LINE = re.compile(r"expression\s*[:=]\s*`*([^`\n]+)", re.IGNORECASE)
_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_OPEN_BLOCK = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*)$", re.DOTALL | re.IGNORECASE)


def format_hint(team: TeamSpec, spec: RoleSpec) -> str:
    """The instruction on how to end a reply: a program for program-aided roles."""
    if spec.program_aided:
        return PROGRAM_HINTS[spec.program_aided]
    return FORMAT_HINTS[team.answer.format]


def _evaluable(candidate: str) -> str | None:
    candidate = candidate.strip().strip("`").strip().rstrip(".")
    try:
        evaluate(candidate)
    except CalculatorError:
        return find_expression(candidate)
    return candidate


def find_program(text: str, mode: str) -> str | None:
    """The expression or program in a reply, if there is one.

    For ``expression``: an ``Expression:`` line, else a code block, else the longest
    arithmetic expression anywhere in the reply. For ``python``: the last complete
    code block, else an unclosed one (small models forget the closing fence).
    """
    if mode == "expression":
        for line in reversed(_EXPRESSION_LINE.findall(text)):
            found = _evaluable(line)
            if found:
                return found
        for block in reversed(_CODE_BLOCK.findall(text)):
            found = _evaluable(block)
            if found:
                return found
        return find_expression(text)
    blocks = _CODE_BLOCK.findall(text)
    if blocks:
        return blocks[-1].strip("\n") or None
    unclosed = _OPEN_BLOCK.search(text)
    if unclosed is None:
        return None
    return unclosed.group(1).strip("\n") or None


async def read_answer(team: TeamSpec, spec: RoleSpec, text: str) -> Answer:
    """The :class:`Answer` in a reply; program-aided roles get their program run."""
    fmt, pattern = team.answer.format, team.answer.pattern
    if not spec.program_aided:
        return Answer(text=text, value=extract(text, fmt, pattern))
    program = find_program(text, spec.program_aided)
    if program is None:
        return Answer(text=text, value=extract(text, fmt, pattern))
    if spec.program_aided == "expression":
        try:
            output: str | None = _number(evaluate(program))
            error = ""
        except CalculatorError as failure:
            output, error = None, str(failure)
    else:
        run = await run_python(program)
        output = run.last_line if run.ok else None
        error = "" if run.ok else run.error()
    # The answer's text is the program and its result, not the reply around it: what the
    # next role (a verifier, a critic, another debater) should judge is what was computed.
    shown = f"Expression: {program}" if spec.program_aided == "expression" else \
        f"```python\n{program}\n```"
    value = extract(output, fmt) if output else None
    if value is None:
        failed = f"{shown}\n\nRunning it failed: {error or 'it printed nothing'}"
        return Answer(text=failed, value=None, program=program)
    return Answer(text=f"{shown}\n\nRunning it gives {output}.\nAnswer: {value}", value=value,
                  program=program)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.10g}"
