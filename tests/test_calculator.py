"""The calculator evaluates arithmetic only and finds false claims in a solution."""

from __future__ import annotations

import pytest

from concilium.tools import get_tool
from concilium.tools.calculator import CalculatorError, check_claims, evaluate, find_expression


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("17 * 24 + 3", 411.0),
        ("(3 + 4) * 2", 14.0),
        ("2 ** 10", 1024.0),
        ("2^3", 8.0),
        ("12 ÷ 4 × 3", 9.0),
        ("1,000 + 1", 1001.0),
        ("-5 + 2", -3.0),
        ("7 // 2 + 7 % 2", 4.0),
    ],
)
def test_evaluates_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "x + 1",
        "(1).__class__",
        "9 ** 9 ** 9",
        "1 / 0",
        "[1, 2]",
        "True + 1",
        "1" * 400,
        "",
    ],
)
def test_rejects_anything_but_bounded_arithmetic(expression: str) -> None:
    with pytest.raises(CalculatorError):
        evaluate(expression)


def test_finds_the_expression_in_a_task() -> None:
    assert find_expression("What is 17 * 24 + 3?") == "17 * 24 + 3"
    assert find_expression("What is (3 + 4) * 2?") == "(3 + 4) * 2"
    assert find_expression("Janet has 3 apples and buys 2 more.") is None


def test_checks_each_claim_of_a_solution() -> None:
    text = "First, 17 * 24 = 36. Then 408 + 3 = 411. So 17 * 24 + 3 = 371."
    claims = check_claims(text)
    wrong = [c.describe() for c in claims if not c.correct]
    assert wrong == ["17 * 24 = 408, not 36", "17 * 24 + 3 = 411, not 371"]
    assert sum(c.correct for c in claims) == 1


def test_is_a_langchain_tool() -> None:
    tool = get_tool("calculator")
    assert tool.name == "calculator"
    assert tool.invoke({"expression": "6 * 7"}) == "42"
    assert tool.invoke({"expression": "import os"}).startswith("error:")
