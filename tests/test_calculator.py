"""The calculator evaluates arithmetic only and finds false claims in a solution."""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from concilium.tools import calculator, get_tool
from concilium.tools.calculator import (
    CalculatorError,
    check_claims,
    evaluate,
    exact,
    find_expression,
)


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


HUGE = [
    "((((9**64)**64)**64)**64)**64",
    "(((9**64)**64)**64)",
    "(2**64)**64",
    "(99**64)**(64)",
    "10**10**10",
    "(10**64)**(10**64)",
    "99999999999**64 * 99999999999**64 * 99999999999**64 * 99999999999**64",
    "9**64*9**64*9**64*9**64*9**64*9**64*9**64",
    "((9**64)*(9**64))**64",
    "(9**64+9**64)**64",
    "(9**64)**64 // 1",
    "(9**64)**64 % 7",
    "1 << 10**9",
    "(9**64) << (9**64)",
    "(-8) ** 0.5",
    "1e300 * 1e300 - 1e300 * 1e300",
    "(" * 150 + "1" + ")" * 150,
]


@pytest.mark.parametrize("expression", HUGE)
def test_huge_results_are_refused_before_they_are_built(expression: str) -> None:
    """Every step's size is bounded before Python computes it (not only the exponent)."""
    started = time.process_time()
    with pytest.raises(CalculatorError) as caught:
        evaluate(expression)
    assert time.process_time() - started < 0.5, "the evaluator built a huge number"
    assert "\n" not in str(caught.value) and str(caught.value)


def test_exact_keeps_integers_exact() -> None:
    assert exact("123456789 * 987654321") == 121932631112635269
    assert exact("2 ** 64 - 1") == 18446744073709551615
    assert exact("7 / 2") == 3.5 and isinstance(exact("6 / 2"), float)
    assert exact("(2**63) ** 2 // 2**64") == 2**62


def test_generated_datasets_use_the_one_evaluator() -> None:
    """``eval/datasets.py`` once had its own unbounded walker; now only the calculator parses."""
    import concilium.eval.datasets as datasets

    source = inspect.getsource(datasets)
    assert "ast.parse" not in source and "from concilium.tools.calculator import exact" in source


_numbers = st.integers(min_value=-(10**12), max_value=10**12).map(str) | st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False
).map(repr)


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 6 or draw(st.booleans()):
        return draw(_numbers)
    op = draw(st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]))
    left = draw(_expressions(depth + 1))
    right = draw(_expressions(depth + 1))
    return f"({left}) {op} ({right})"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_no_expression_takes_long_or_builds_a_huge_int(expression: str) -> None:
    """Whatever the nesting, the evaluator answers fast and never holds a huge integer."""
    biggest = 0
    original = dict(calculator._BINARY)

    def watch(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def wrapped(a: Any, b: Any) -> Any:  # records every integer the evaluator builds
            nonlocal biggest
            result = fn(a, b)
            if isinstance(result, int):
                biggest = max(biggest, result.bit_length())
            return result
        return wrapped

    started = time.process_time()
    try:
        calculator._BINARY.update({op: watch(fn) for op, fn in original.items()})
        with contextlib.suppress(CalculatorError):
            exact(expression)
    finally:
        calculator._BINARY.update(original)
    assert time.process_time() - started < 0.5
    assert biggest <= calculator.MAX_INT_BITS


def test_a_long_run_of_terms_is_scanned_fast() -> None:
    """The claim pattern once backtracked exponentially: 8 spaced terms took 8 s, 10 minutes."""
    text = "1" + " +     (2" * 40 + " x"
    started = time.process_time()
    assert check_claims(text) == []
    find_expression(text)
    assert time.process_time() - started < 0.5


def test_an_expression_is_parsed_once_and_a_refusal_every_time() -> None:
    """A verifier checks the task's expression on every round (issue #17): the value is
    remembered; a refused expression is refused again, never remembered as a value."""
    calculator._exact.cache_clear()
    assert calculator.exact("17 * 24 + 3") == 411 == calculator.exact("17 * 24 + 3")
    assert calculator._exact.cache_info().hits == 1
    for _ in range(2):
        with pytest.raises(CalculatorError):
            calculator.exact("2 ** 99999")
    assert calculator._exact.cache_info().currsize == 1
