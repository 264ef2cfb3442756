"""Graders: decide whether a team's answer matches an item's accepted answers.

One grader per answer format (``number``, ``choice``, ``text``, ``code``). A
grader reads the reply the same way the team does (``agents/answers.py``), so
what the report counts is what the team itself would call its answer, and it
records both its decision and the answer it read, per item.

Numbers are forgiving where people are (``1,000``, ``$18.00``, ``18 dollars``,
``3/4`` = ``0.75``, ``75%`` = ``0.75`` = ``75`` when the reference is a
percentage) and strict where it matters: a reply matches within ``tolerance``
(relative), or when both sides are written to at least two decimals and agree
to the fewer of them (``0.67`` for ``2/3``) with two significant digits left.
A reference that is not one number (CIAR's ``1/e``, ``1:1``) is compared as
text, and ``6 or 12`` accepts either.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from concilium.agents.answers import extract, normalize, parse_number
from concilium.errors import MissingDependencyError
from concilium.eval.datasets import Item

__all__ = [
    "ChoiceGrader",
    "CodeGrader",
    "Grade",
    "Grader",
    "NumberGrader",
    "TextGrader",
    "grader_for",
]

_OR_RE = re.compile(r"\s+or\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Grade:
    """A grader's decision on one reply, with what it read and what it matched."""

    correct: bool
    extracted: str | None
    """The answer read from the reply (``None``: the reply had none)."""
    expected: str
    """The accepted answer that matched, or the reference when none did."""
    detail: str | None = None
    """Why, when it is not obvious: no answer found, test output, a missing tool."""


class Grader(Protocol):
    """Grades a reply against an item. ``blocking`` graders run off the event loop."""

    @property
    def name(self) -> str:
        """The answer format it grades."""
        ...

    @property
    def blocking(self) -> bool:
        """Whether grading blocks (runs a program) and belongs on a worker thread."""
        ...

    @property
    def id(self) -> str:
        """Name plus settings: results graded under another id are regraded on resume."""
        ...

    def grade(self, item: Item, text: str, answer: str | None = None) -> Grade:
        """Grade ``text`` (the full reply); ``answer`` is the team's own extraction, if any."""
        ...


def _alternatives(item: Item) -> list[str]:
    """Accepted answers with ``a or b`` split into both."""
    out: list[str] = []
    for answer in item.answers:
        out.extend(part for part in _OR_RE.split(answer) if part.strip())
    return out


def _decimals(value: str) -> int:
    """Decimals a normalised number is written to (``0.67`` -> 2, ``18`` -> 0)."""
    return len(value.split(".", 1)[1]) if "." in value else 0


@dataclass(frozen=True)
class NumberGrader:
    """Numbers, within a relative ``tolerance`` or agreeing to their written precision."""

    tolerance: float = 1e-6
    name: ClassVar[str] = "number"
    blocking: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return f"number:{self.tolerance:g}"

    def grade(self, item: Item, text: str, answer: str | None = None) -> Grade:
        value = answer if answer is not None else extract(text, "number")
        as_text = extract(text, "text")
        for expected in _alternatives(item):
            if parse_number(expected, whole=True) is None:
                # not one number (1/e, 1:1): compare the answer line as text
                wanted = normalize(expected, "text")
                if wanted is not None and wanted in {as_text, normalize(value, "text")}:
                    return Grade(True, as_text if wanted == as_text else value, expected)
            elif self._matches(value, expected):
                return Grade(True, value, expected)
        detail = None if value is not None else "no number found in the reply"
        return Grade(False, value, item.reference, detail)

    def _matches(self, value: str | None, expected: str) -> bool:
        reference = parse_number(expected, whole=True)
        got = parse_number(value) if value is not None else None
        if reference is None or got is None:
            return False
        if got is None:
            return False
        if self._close(got, reference):
            return True
        if expected.strip().endswith("%") and self._close(got, reference * 100.0):
            return True  # "75" for a reference of "75%"
        return self._same_when_rounded(value or "", got, expected, reference)

    def _close(self, a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=self.tolerance, abs_tol=self.tolerance)

    @staticmethod
    def _same_when_rounded(value: str, got: float, expected: str, reference: float) -> bool:
        places = min(_decimals(normalize(value, "number") or ""),
                     _decimals(normalize(expected, "number") or ""))
        if places < 2 or abs(reference) < 10.0 ** (1 - places):  # keep 2 significant digits
            return False
        return round(got, places) == round(reference, places)


@dataclass(frozen=True)
class ChoiceGrader:
    """Multiple choice: the option letter, however it is written (``B``, ``(b)``, ``B.``)."""

    name: ClassVar[str] = "choice"
    blocking: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return "choice"

    def grade(self, item: Item, text: str, answer: str | None = None) -> Grade:
        value = answer if answer is not None else extract(text, "choice")
        for expected in _alternatives(item):
            if value is not None and value == normalize(expected, "choice"):
                return Grade(True, value, expected)
        return Grade(False, value, item.reference,
                     None if value is not None else "no option letter found in the reply")


@dataclass(frozen=True)
class TextGrader:
    """Short text answers, compared lower-cased without articles and punctuation."""

    name: ClassVar[str] = "text"
    blocking: ClassVar[bool] = False

    @property
    def id(self) -> str:
        return "text"

    def grade(self, item: Item, text: str, answer: str | None = None) -> Grade:
        value = normalize(answer, "text") if answer is not None else extract(text, "text")
        for expected in item.answers:
            if value is not None and value == normalize(expected, "text"):
                return Grade(True, value, expected)
        return Grade(False, value, item.reference,
                     None if value is not None else "no answer found in the reply")


@dataclass(frozen=True)
class CodeGrader:
    """Code: the reply's last Python block runs with the item's tests in the sandbox.

    The item's answer is the test code (asserts, or functions named ``test_*``,
    which are called). It needs ``concilium.tools.sandbox`` (issue 3); without it,
    :meth:`require` raises and says so, instead of grading every item wrong.
    """

    timeout_s: float = 10.0
    name: ClassVar[str] = "code"
    blocking: ClassVar[bool] = True

    @property
    def id(self) -> str:
        return f"code:{self.timeout_s:g}"

    @staticmethod
    def sandbox() -> Any:
        """The sandbox module, or ``None`` when this install does not have it."""
        try:
            from concilium.tools import sandbox
        except ImportError:
            return None
        return sandbox

    def require(self) -> None:
        """Raise a clear error up front when code cannot be graded here."""
        if self.sandbox() is None:
            raise MissingDependencyError(
                "grading code needs the Python sandbox tool (concilium.tools.sandbox, "
                "issue 3), which this install does not have yet; grade another format "
                "with --format number|choice|text"
            )

    def grade(self, item: Item, text: str, answer: str | None = None) -> Grade:
        code = answer if answer is not None else extract(text, "code")
        sandbox = self.sandbox()
        if sandbox is None:
            return Grade(False, code, item.reference, "needs concilium.tools.sandbox (issue 3)")
        if not code:
            return Grade(False, code, item.reference, "no code found in the reply")
        program = f"{code}\n\n{item.reference}\n\n{_CALL_TESTS}"
        passed, output = _run_in_sandbox(sandbox, program, self.timeout_s)
        return Grade(passed, code, item.reference, None if passed else output[-400:] or None)


_CALL_TESTS = """\
for _name, _test in list(globals().items()):
    if _name.startswith("test_") and callable(_test):
        _test()
"""


def _run_in_sandbox(sandbox: Any, program: str, timeout_s: float) -> tuple[bool, str]:
    """Run ``program`` in the sandbox (blocking); passed means it exited cleanly."""
    result = sandbox.run_python_sync(program, limits=sandbox.SandboxLimits(timeout_s=timeout_s))
    return bool(result.ok), "" if result.ok else result.error()


def grader_for(fmt: str, *, tolerance: float = 1e-6) -> Grader:
    """The grader of an answer format (``number``, ``choice``, ``text``, ``code``)."""
    graders: dict[str, Grader] = {
        "number": NumberGrader(tolerance),
        "choice": ChoiceGrader(),
        "text": TextGrader(),
        "code": CodeGrader(),
    }
    if fmt not in graders:
        from concilium.errors import ConfigError

        raise ConfigError(f"unknown answer format {fmt!r}; valid formats: {', '.join(graders)}")
    return graders[fmt]
