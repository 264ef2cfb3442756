"""``reflexion``: trial -> evaluate -> reflect -> retry with the reflection in the prompt."""

from __future__ import annotations

from typing import Any

import pytest

from concilium import TeamFileError, load_team
from concilium.agents.providers import scripted
from concilium.teams import spec_from_dict

TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
LESSON = "Reflection: I multiplied 17 by 24 wrongly; 17 * 24 is 408."


def team(check: str = "reference", **options: Any) -> dict[str, Any]:
    return {"name": "rx", "strategy": {"name": "reflexion", **options},
            "roles": {"generator": {}, "verifier": {"check": check}, "reflector": {}}}


def learns_from(lesson: str) -> scripted.Rule:
    """The generator is right only when the lesson is in its prompt."""
    return scripted.Rule(lambda call: RIGHT if lesson in call.prompt else WRONG, role="generator")


async def test_succeeds_on_trial_two_because_of_its_reflection() -> None:
    script = scripted.Script({"reflector": [LESSON]}, rules=[learns_from("17 * 24 is 408")])
    with scripted.use("rx1", script):
        result = await load_team(team(), model="scripted/rx1").arun(TASK, reference="411")
    assert [s["role"] for s in result.steps] == [
        "generator", "verifier", "reflector", "generator", "verifier"]
    first, second = (c for c in script.calls if c.role == "generator")
    assert "17 * 24 is 408" not in first.prompt
    assert "I multiplied 17 by 24 wrongly; 17 * 24 is 408." in second.prompt
    assert result.answer == "411" and result.correct is True
    assert result.stop_reason == "trial 2 accepted by the reference check"
    assert result.flips == {"changed": 1, "right->wrong": 0, "wrong->right": 1}
    # The evaluator's feedback never gives the reference away.
    assert "411" not in script.calls[1].prompt
    assert "411" not in result.steps[1]["output"]


async def test_stops_at_its_trial_limit_with_every_reflection_in_the_last_prompt() -> None:
    script = scripted.Script({"reflector": ["Reflection: first", "second lesson"]},
                             default=WRONG)
    with scripted.use("rx2", script):
        result = await load_team(team(trials=3), model="scripted/rx2").arun(TASK, reference="411")
    assert script.count("generator") == 3 and script.count("reflector") == 2
    assert result.stop_reason == "trial limit (3) reached" and result.rounds == 2
    last = [c for c in script.calls if c.role == "generator"][-1].prompt
    assert "- first\n- second lesson" in last


async def test_the_calculator_can_be_the_evaluator() -> None:
    script = scripted.Script({"reflector": [LESSON]}, rules=[learns_from("17 * 24 is 408")])
    with scripted.use("rx3", script):
        result = await load_team(team(check="calculator"), model="scripted/rx3").arun(TASK)
    assert result.answer == "411" and script.count("generator") == 2
    assert "17 * 24 = 408, not 398" in script.calls[1].prompt  # calculator feedback to reflector


async def test_an_empty_reflection_falls_back_to_the_evaluators_feedback() -> None:
    script = scripted.Script({"generator": [WRONG, RIGHT], "reflector": ["   "]})
    with scripted.use("rx4", script):
        result = await load_team(team(), model="scripted/rx4").arun(TASK, reference="411")
    reflection = result.steps[2]["parsed"]
    assert reflection == {"text": "The answer 401 was wrong: the answer 401 is not correct",
                          "parsed": False}
    assert reflection["text"] in script.calls[2].prompt


async def test_without_a_reference_the_reference_check_accepts_unchecked() -> None:
    with scripted.use("rx5", scripted.Script({"generator": [WRONG]})):
        result = await load_team(team(), model="scripted/rx5").arun(TASK)
    assert result.steps[1]["parsed"]["checked"] is False
    assert result.stop_reason == "trial 1 accepted by the reference check"


def test_the_evaluator_is_required() -> None:
    with pytest.raises(TeamFileError, match="needs role"):
        spec_from_dict({"name": "rx", "strategy": "reflexion", "roles": {"generator": {}}})
