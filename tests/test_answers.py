"""Answer extraction must cope with a tiny model that ignores the requested format."""

from __future__ import annotations

import pytest

from concilium.agents.answers import extract, normalize, parse_number, same


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411", "411"),
        ("The answer is $1,000.", "1000"),
        ("#### 18", "18"),
        ("so we get \\boxed{42} in the end", "42"),
        ("First 3 + 4 = 7, then 7 * 2 = 14", "14"),  # no marker: the last number
        ("Answer: -2.50", "-2.5"),
        ("Final answer: 3/4", "0.75"),
        ("Answer: none that I can see, but 12 is likely", "12"),
        ("no numbers at all", None),
        ("", None),
    ],
)
def test_number_extraction(text: str, expected: str | None) -> None:
    assert extract(text, "number") == expected


def test_explicit_pattern_wins_over_markers() -> None:
    text = "Answer: 5\nRESULT=7"
    assert extract(text, "number", pattern=r"RESULT=(\d+)") == "7"
    assert extract(text, "number", pattern=r"MISSING=(\d+)") == "5"


def test_choice_text_and_code_formats() -> None:
    assert extract("I think it is (c) because ...", "choice") == "C"
    assert extract("Answer: B", "choice") == "B"
    assert extract("Some reasoning.\nAnswer: The Eiffel Tower!", "text") == "eiffel tower"
    code = "Here:\n```python\ndef f():\n    return 1\n```\n"
    assert extract(code, "code") == "def f():\n    return 1"


def test_parse_and_compare_numbers_written_like_people_do() -> None:
    assert parse_number("$18.00") == 18.0
    assert parse_number("1,234,567") == 1234567.0
    assert parse_number("50%") == 0.5
    assert same("3/4", "0.75")
    assert same("1,000", "1000")
    assert not same("18", "19")
    assert not same(None, "1")
    assert normalize("  ") is None

