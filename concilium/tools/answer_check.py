"""Answer check: compare an answer with a known reference, the way the team's format says.

A ground-truth check is the strongest outside feedback there is (Reflexion uses it
when it has one), and the cheapest. It reads the answer the same way the rest of
concilium does (:mod:`concilium.agents.answers`): numbers within a relative
tolerance, choice letters, normalised text, code verbatim.

Example:
    >>> check_answer("so the total is $1,300.", "1300").correct
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from concilium.agents.answers import AnswerFormat, extract, normalize, same

__all__ = ["AnswerCheck", "answer_check_tool", "check_answer"]


@dataclass(frozen=True)
class AnswerCheck:
    """The outcome of one comparison."""

    correct: bool
    got: str | None
    """The answer as read (normalised); ``None`` when none could be read."""
    expected: str | None
    """The reference, normalised."""

    @property
    def reason(self) -> str:
        """Why, without revealing the reference (it may be fed back to a model)."""
        if self.got is None:
            return "no final answer could be read"
        return f"the answer {self.got} is correct" if self.correct else \
            f"the answer {self.got} is not correct"


def check_answer(answer: str | None, reference: str, fmt: AnswerFormat = "number",
                 tolerance: float = 1e-6) -> AnswerCheck:
    """Whether ``answer`` (a bare value or a whole reply) matches ``reference``.

    Args:
        answer: an extracted answer or the full text it is in.
        reference: the known right answer.
        fmt: the team's answer format.
        tolerance: relative tolerance for numbers.
    """
    expected = normalize(reference, fmt)
    got = extract(answer, fmt) if answer else None
    return AnswerCheck(correct=same(got, expected, fmt, tolerance), got=got, expected=expected)


def answer_check_tool() -> Any:
    """The check as a LangChain tool (imported lazily: langchain-core is not cheap)."""
    from langchain_core.tools import StructuredTool

    def answer_check(answer: str, reference: str, format: str = "number") -> str:
        """Say whether an answer matches a reference (number, choice, text or code)."""
        fmt = format if format in ("number", "choice", "text", "code") else "text"
        result = check_answer(answer, reference, fmt)  # type: ignore[arg-type]
        return "correct" if result.correct else f"incorrect: {result.reason}"

    return StructuredTool.from_function(answer_check, name="answer_check")
