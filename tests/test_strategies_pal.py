"""Program-aided generation: the model writes an expression or a program, a tool computes."""

from __future__ import annotations

from typing import Any

import pytest

from concilium import TeamFileError, load_team
from concilium.agents.providers import scripted
from concilium.agents.roles.program import find_program
from concilium.teams import spec_from_dict

TASK = "What is 74 * 18 - 32?"


def single(mode: str | None = None, **role: Any) -> dict[str, Any]:
    generator = {"program_aided": mode, **role} if mode else role
    return {"name": "pal", "strategy": "single", "roles": {"generator": generator}}


def transcriber(call: scripted.ScriptCall) -> str:
    """A model that cannot multiply but can copy the task into an expression."""
    if "Expression:" in call.text:
        return "Expression: 74 * 18 - 32"
    return "74 * 18 = 1342. 1342 - 32 = 1310.\nAnswer: 1310"


async def test_one_yaml_line_turns_a_wrong_prose_answer_into_a_computed_one() -> None:
    with scripted.use("p1", scripted.Script(default=transcriber)):
        prose = await load_team(single(), model="scripted/p1").arun(TASK, reference="1300")
        pal = await load_team(single("expression"), model="scripted/p1").arun(
            TASK, reference="1300")
    assert (prose.answer, prose.correct) == ("1310", False)
    assert (pal.answer, pal.correct) == ("1300", True)
    parsed = pal.steps[0]["parsed"]
    assert parsed["program"] == "74 * 18 - 32" and parsed["value"] == "1300"
    assert pal.answer_text == "Expression: 74 * 18 - 32\n\nRunning it gives 1300.\nAnswer: 1300"
    assert pal.steps[0]["output"] == "Expression: 74 * 18 - 32"  # the raw reply stays in the step


@pytest.mark.parametrize(("reply", "program", "value"), [
    ("Expression: 74 * 18 - 32", "74 * 18 - 32", "1300"),
    ("Expression: `(74 * 18) - 32`.", "(74 * 18) - 32", "1300"),
    ("The expression is 74 * 18 - 32 = 1350", "74 * 18 - 32", "1300"),  # its own sum is ignored
    ("I think it is 12.\nAnswer: 12", None, "12"),  # no program: ordinary extraction
])
async def test_expressions_are_found_and_evaluated(reply: str, program: str | None,
                                                   value: str) -> None:
    with scripted.use("p2", scripted.Script(default=reply)):
        result = await load_team(single("expression"), model="scripted/p2").arun(TASK)
    assert result.steps[0]["parsed"]["program"] == program
    assert result.answer == value


async def test_python_programs_run_in_the_sandbox() -> None:
    reply = "```python\nitems = 74 * 18\nprint('total:')\nprint(items - 32)\n```"
    with scripted.use("p3", scripted.Script(default=reply)) as script:
        result = await load_team(single("python"), model="scripted/p3").arun(TASK)
    assert result.answer == "1300"
    assert result.steps[0]["parsed"]["program"] == "items = 74 * 18\nprint('total:')\n" \
        "print(items - 32)"
    assert "Python program" in script.calls[0].messages[0]["content"]


async def test_a_failing_program_gives_no_answer_and_says_why() -> None:
    reply = "```python\nprint(74 * 18 - undefined)\n```"
    with scripted.use("p4", scripted.Script(default=reply)):
        result = await load_team(single("python"), model="scripted/p4").arun(TASK)
    assert result.answer is None
    assert "NameError: name 'undefined' is not defined" in result.answer_text


async def test_self_consistency_over_program_aided_samples() -> None:
    replies = ["Expression: 74 * 18 - 32", "Expression: 74 * 18 + 32", "Expression: 74*18 - 32"]
    spec = {"name": "pal-sc", "strategy": {"name": "self_consistency", "samples": 3},
            "roles": {"generator": {"program_aided": "expression", "temperature": 0.7}}}
    with scripted.use("p5", scripted.Script(default=lambda c: replies[c.params["seed"]])):
        result = await load_team(spec, model="scripted/p5").arun(TASK, reference="1300")
    assert result.answer == "1300" and result.correct is True
    programs = [s["parsed"]["program"] for s in result.steps if s["role"] == "generator"]
    assert sorted(programs) == ["74 * 18 + 32", "74 * 18 - 32", "74*18 - 32"]
    assert result.steps[-1]["parsed"]["votes"] == {"1300": 2, "1364": 1}


async def test_program_aided_debaters_get_the_program_instruction() -> None:
    spec = {"name": "pal-db", "strategy": {"name": "debate", "rounds": 1, "debaters": 2},
            "roles": {"debater": {"program_aided": "expression"}}}
    with scripted.use("p6", scripted.Script(default="Expression: 74 * 18 - 32")) as script:
        result = await load_team(spec, model="scripted/p6").arun(TASK)
    assert "'Expression: <arithmetic expression>'" in script.calls[0].messages[0]["content"]
    assert result.answer == "1300"


def test_only_answering_roles_can_be_program_aided() -> None:
    with pytest.raises(TeamFileError) as caught:
        spec_from_dict({"name": "x", "strategy": "gvr", "roles": {
            "generator": {}, "verifier": {"program_aided": "python"}}})
    assert caught.value.field == "roles.verifier.program_aided"


def test_find_program_copes_with_unclosed_code_blocks() -> None:
    assert find_program("```python\nprint(1 + 1)\n", "python") == "print(1 + 1)"
    assert find_program("no code here", "python") is None
    assert find_program("nothing to compute", "expression") is None
