"""A safe calculator: arithmetic parsed with ``ast``, never ``eval``.

It is the simplest outside check the research asks for: a verifier that does not
share the generator's blind spots. Besides evaluating one expression it finds
the ``a op b = c`` claims in a solution and reports the ones that are false.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CalculatorError", "Claim", "check_claims", "evaluate", "exact", "find_expression"]

MAX_EXPRESSION_CHARS = 300
MAX_EXPONENT = 64
MAX_MAGNITUDE = 1e30
MAX_INT_BITS = 4096
"""Largest integer any step may produce. The answer itself is bounded by ``MAX_MAGNITUDE``
(about 100 bits); intermediates get room to spare, but every result's size is checked
*before* Python computes it, so ``((9**64)**64)**64`` never builds a huge number."""

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

# Runs of numbers joined by operators and parentheses, as people write them in prose.
# No two parts may match the same characters (e.g. a space after an operator is the next
# term's): an ambiguous pattern backtracks exponentially on a long run that ends badly.
_EXPR_RE = re.compile(
    r"[(\s]*[-−]?\d[\d,.]*(?:[\s)]*(?:\*\*|[-+*/×x÷^−])[\s(]*[-−]?\d[\d,.]*)+[\s)]*"
)
_CLAIM_RE = re.compile(
    r"((?:[(\s]*[-−]?\d[\d,.]*[\s)]*(?:\*\*|[-+*/×÷^−]))+[(\s]*[-−]?\d[\d,.]*[\s)]*)"
    r"=\s*\$?\s*([-−]?\d[\d,]*(?:\.\d+)?)"
)


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its value is out of bounds."""


def _clean(expression: str) -> str:
    text = expression.strip().rstrip(".").replace("−", "-").replace("×", "*").replace("÷", "/")
    text = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", text)
    text = text.replace("^", "**")
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression.

    Raises:
        CalculatorError: anything but numbers, + - * / // % ** and parentheses, a
            division by zero, or a result (or any step towards it) too large.

    Example:
        >>> evaluate("17 * 24 + 3")
        411.0
    """
    return float(exact(expression))


def exact(expression: str) -> int | float:
    """The value of an arithmetic expression, an exact ``int`` when no step leaves integers.

    The one arithmetic evaluator of the project (the calculator tool, program-aided
    expressions and generated datasets all use it), so its bounds hold everywhere.

    Raises:
        CalculatorError: as :func:`evaluate`.

    Example:
        >>> exact("(12 + 3) * 4")
        60
    """
    return _exact(expression)


@functools.lru_cache(maxsize=4096)
def _exact(expression: str) -> int | float:
    """:func:`exact`, remembered: a verifier checks the task's expression on every round,
    and finding one evaluates each candidate (a refusal raises and is not remembered)."""
    text = _clean(expression)
    if not text or len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expression empty or longer than {MAX_EXPRESSION_CHARS} chars")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as error:
        raise CalculatorError(f"not an arithmetic expression: {expression!r}") from error
    try:
        value = _eval(tree.body)
    except ZeroDivisionError as error:
        raise CalculatorError("division by zero") from error
    except OverflowError as error:
        raise CalculatorError("result too large") from error
    except RecursionError as error:
        raise CalculatorError("expression nested too deeply") from error
    if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
        raise CalculatorError("result too large")
    return value


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise CalculatorError("booleans are not numbers here")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        _check_step(node.op, left, right)
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, complex):  # e.g. (-8) ** 0.5
            raise CalculatorError("result is not a real number")
        return result
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    raise CalculatorError(f"not allowed in arithmetic: {ast.dump(node)[:60]}")


def _check_step(op: ast.operator, left: int | float, right: int | float) -> None:
    """Refuse a step whose integer result would exceed ``MAX_INT_BITS``, before computing it.

    Bounds from the operands' bit lengths: a sum has at most one bit more than its
    larger operand, a product the sum of both, ``a ** n`` at most ``bits(a) * n``.
    Division, ``//`` and ``%`` never grow, and float steps overflow to an error or inf.
    """
    if isinstance(op, ast.Pow) and abs(right) > MAX_EXPONENT:
        raise CalculatorError(f"exponent larger than {MAX_EXPONENT}")
    if not (isinstance(left, int) and isinstance(right, int)):
        return
    bits_left, bits_right = abs(left).bit_length(), abs(right).bit_length()
    if isinstance(op, ast.Add | ast.Sub):
        bits = max(bits_left, bits_right) + 1
    elif isinstance(op, ast.Mult):
        bits = bits_left + bits_right
    elif isinstance(op, ast.Pow) and right > 0:
        bits = bits_left * right
    else:
        return
    if bits > MAX_INT_BITS:
        raise CalculatorError(f"a step of the calculation exceeds {MAX_INT_BITS} bits")


def find_expression(text: str) -> str | None:
    """The longest arithmetic expression in ``text`` that evaluates, if any."""
    best: str | None = None
    for match in _EXPR_RE.finditer(text):
        candidate = match.group(0).strip().rstrip(".,")
        if candidate.count("(") != candidate.count(")"):
            candidate = candidate.strip("() ")
        try:
            evaluate(candidate)
        except CalculatorError:
            continue
        if best is None or len(candidate) > len(best):
            best = candidate
    return best


@dataclass(frozen=True)
class Claim:
    """An ``expression = value`` statement found in a solution, checked."""

    expression: str
    claimed: float
    actual: float

    @property
    def correct(self) -> bool:
        return math.isclose(self.claimed, self.actual, rel_tol=1e-6, abs_tol=1e-6)

    def describe(self) -> str:
        return f"{self.expression} = {_fmt(self.actual)}, not {_fmt(self.claimed)}"


def check_claims(text: str) -> list[Claim]:
    """Every ``a op b = c`` claim in ``text`` that the calculator could evaluate."""
    claims: list[Claim] = []
    for match in _CLAIM_RE.finditer(text):
        expression = match.group(1).strip()
        if expression.count("(") != expression.count(")"):
            expression = expression.strip("() ")
        try:
            actual = evaluate(expression)
            claimed = float(match.group(2).replace(",", "").replace("−", "-"))
        except (CalculatorError, ValueError):
            continue
        claims.append(Claim(expression, claimed, actual))
    return claims


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.6g}"


def calculator_tool() -> Any:
    """The calculator as a LangChain tool (imported lazily: langchain-core is not cheap)."""
    from langchain_core.tools import StructuredTool

    def calculate(expression: str) -> str:
        """Evaluate an arithmetic expression such as '17 * 24 + 3'."""
        try:
            return _fmt(evaluate(expression))
        except CalculatorError as error:
            return f"error: {error}"

    return StructuredTool.from_function(calculate, name="calculator")
