"""Graders on the answers people (and tiny models) really write."""

from __future__ import annotations

import pytest

from concilium.agents.answers import parse_number
from concilium.errors import ConfigError, MissingDependencyError
from concilium.eval.datasets import Item
from concilium.eval.graders import (
    ChoiceGrader,
    CodeGrader,
    NumberGrader,
    TextGrader,
    grader_for,
)


def item(*answers: str) -> Item:
    return Item(id="0", question="q", answers=answers)


@pytest.mark.parametrize(
    ("reply", "reference"),
    [
        ("Answer: 1,000", "1000"),
        ("Answer: 1000", "1,000"),
        ("Answer: $18.00", "18"),
        ("She makes $18.00 every day.", "18"),
        ("Answer: 18 dollars", "$18.00"),
        ("So the total is 18 dollars", "18"),
        ("Answer: 3/4", "0.75"),
        ("Answer: 0.75", "3/4"),
        ("Answer: 75%", "0.75"),
        ("Answer: 75", "75%"),
        ("#### 70,000", "70000"),
        ("\\boxed{-5}", "-5"),
        ("Answer: 0.67", "2/3"),
        ("Answer: 66.67%", "2/3"),
        ("Answer: 0.6667", "0.67"),
        ("Answer: 1/3", "0.33"),
    ],
)
def test_numbers_people_write_match(reply: str, reference: str) -> None:
    grade = NumberGrader().grade(item(reference), reply)
    assert grade.correct, (reply, reference, grade)
    assert grade.expected == reference


@pytest.mark.parametrize(
    ("reply", "reference"),
    [
        ("Answer: 0.3", "1/3"),  # one decimal is not two significant digits of 1/3
        ("Answer: 1.54", "1.5"),  # 1.5 is exact: 1.54 is wrong
        ("Answer: 0.02", "0.019"),  # rounding may not eat the only significant digit
        ("Answer: 17", "18"),
        ("Answer: 1800", "18"),
        ("Answer: 18", "1.8%"),
        ("I do not know", "18"),
    ],
)
def test_wrong_numbers_do_not_match(reply: str, reference: str) -> None:
    assert not NumberGrader().grade(item(reference), reply).correct


def test_tolerance_is_relative_and_configurable() -> None:
    assert not NumberGrader().grade(item("100"), "Answer: 100.5").correct
    assert NumberGrader(tolerance=0.01).grade(item("100"), "Answer: 100.5").correct
    assert NumberGrader(tolerance=0.01).id != NumberGrader().id


def test_grade_records_extracted_answer_and_why() -> None:
    grade = NumberGrader().grade(item("18"), "Let me think... Answer: $18.00")
    assert (grade.correct, grade.extracted, grade.expected) == (True, "18", "18")
    missing = NumberGrader().grade(item("18"), "no idea")
    assert missing.extracted is None and missing.detail == "no number found in the reply"


def test_team_extraction_is_used_when_given() -> None:
    # the team's own pattern picked "18"; the grader must not re-read the text its own way
    grade = NumberGrader().grade(item("18"), "RESULT=18 (not 19)", answer="18")
    assert grade.correct and grade.extracted == "18"


def test_ciar_lists_of_accepted_answers() -> None:
    accepted = item("0.75", "75%", "3/4")
    for reply in ("Answer: 0.75", "Answer: 75%", "Answer: 3/4", "Answer: 75"):
        assert NumberGrader().grade(accepted, reply).correct, reply
    assert not NumberGrader().grade(accepted, "Answer: 0.9").correct


def test_non_numeric_references_are_not_read_as_their_first_number() -> None:
    assert parse_number("1/e", whole=True) is None
    assert parse_number("1/e") == 1.0  # extraction from prose keeps its old behaviour
    e = item("1/e", "0.3679")
    assert not NumberGrader().grade(e, "Answer: 1").correct
    assert NumberGrader().grade(e, "Answer: 1/e").correct
    assert NumberGrader().grade(e, "Answer: 0.368").correct
    ratio = item("1:1", "50:50")
    assert NumberGrader().grade(ratio, "Answer: 1:1").correct
    assert not NumberGrader().grade(ratio, "Answer: 1").correct


def test_either_of_two_answers() -> None:
    either = item("6 or 12")
    assert NumberGrader().grade(either, "Answer: 6").correct
    assert NumberGrader().grade(either, "Answer: 12").correct
    assert not NumberGrader().grade(either, "Answer: 7").correct


def test_whole_number_parsing_of_references() -> None:
    assert parse_number("18 dollars", whole=True) == 18.0
    assert parse_number("$1,000.50", whole=True) == 1000.5
    assert parse_number("3/4", whole=True) == 0.75
    assert parse_number("6 or 12", whole=True) is None
    assert parse_number("about 5", whole=True) is None


def test_choice_letters_however_written() -> None:
    grader = ChoiceGrader()
    for reply in ("Answer: B", "Answer: (b)", "I pick B.", "the answer is B"):
        assert grader.grade(item("B"), reply).correct, reply
    assert grader.grade(item("(C)"), "Answer: C").correct
    assert not grader.grade(item("B"), "Answer: C").correct


def test_text_is_normalised() -> None:
    grader = TextGrader()
    assert grader.grade(item("Paris"), "Answer: paris.").correct
    assert grader.grade(item("The Eiffel Tower"), "Answer: eiffel tower").correct
    assert grader.grade(item("Jupiter", "planet Jupiter"), "Answer: Planet Jupiter!").correct
    assert not grader.grade(item("Paris"), "Answer: Lyon").correct


def test_code_grader_says_it_needs_the_sandbox_or_grades_with_it() -> None:
    grader = CodeGrader()
    tests = "assert add(2, 3) == 5\n\ndef test_negative():\n    assert add(-1, 1) == 0\n"
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    bad = "```python\ndef add(a, b):\n    return a - b\n```"
    if grader.sandbox() is None:
        with pytest.raises(MissingDependencyError, match="sandbox"):
            grader.require()
        grade = grader.grade(item(tests), good)
        assert not grade.correct and "sandbox" in (grade.detail or "")
        return
    grader.require()
    assert grader.grade(item(tests), good).correct
    failing = grader.grade(item(tests), bad)
    assert not failing.correct and failing.extracted is not None
    assert "AssertionError" in (failing.detail or "")


def test_grader_for_names_the_valid_formats() -> None:
    assert grader_for("number", tolerance=0.5).id == "number:0.5"
    with pytest.raises(ConfigError, match="valid formats: number, choice, text, code"):
        grader_for("essay")
