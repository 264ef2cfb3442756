"""Tool verdicts beyond the calculator: run the tests, or compare with the reference.

Both give the outside feedback the self-correction literature says a loop needs:
a failing test's assertion, or a plain "not correct" from a known answer (which
is never revealed, so a reflexion run cannot simply copy it).
"""

from __future__ import annotations

import re

from concilium.agents.roles.results import Answer, Verdict
from concilium.tools.answer_check import check_answer
from concilium.tools.sandbox import run_python

__all__ = ["reference_verdict", "tests_in", "tests_verdict"]

_BLOCK = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_ASSERT = re.compile(r"^[ \t]*assert\b.*$", re.MULTILINE)


def tests_in(task: str) -> str:
    """The tests written in a task: code blocks that assert, else its ``assert`` lines."""
    blocks = [b for b in _BLOCK.findall(task) if _ASSERT.search(b)]
    if blocks:
        return "\n\n".join(b.strip("\n") for b in blocks)
    return "\n".join(line.strip() for line in _ASSERT.findall(task))


def _code_of(answer: Answer) -> str:
    if answer.program:
        return answer.program
    blocks = _BLOCK.findall(answer.text)
    return blocks[-1] if blocks else (answer.value or answer.text)


async def tests_verdict(task: str, answer: Answer, tests: str | None = None) -> Verdict:
    """Run the answer's code followed by the tests (given, or found in the task)."""
    tests = tests if tests is not None else tests_in(task)
    code = _code_of(answer)
    run = await run_python(f"{code}\n\n# --- tests ---\n{tests}\n")
    if run.ok:
        reason = "all tests passed" if tests.strip() else "the code runs; no tests were given"
        return Verdict(accepted=True, reason=reason, checked_by="tests",
                       checked=bool(tests.strip()))
    reason = "the tests failed:\n" + run.error()
    return Verdict(accepted=False, reason=reason, feedback=reason, checked_by="tests")


def reference_verdict(answer: Answer, reference: str | None, fmt: str = "number",
                      tolerance: float = 1e-6) -> Verdict:
    """Compare with the known answer; without one there is nothing to check (accept)."""
    if reference is None:
        return Verdict(accepted=True, reason="no reference answer was given",
                       checked_by="reference", checked=False)
    result = check_answer(answer.value or answer.text, reference, fmt,  # type: ignore[arg-type]
                          tolerance)
    feedback = "" if result.correct else result.reason
    return Verdict(accepted=result.correct, reason=result.reason, feedback=feedback,
                   checked_by="reference")
