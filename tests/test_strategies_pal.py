"""Program-aided generation: the model writes an expression or a program, a tool computes."""

from __future__ import annotations

from pathlib import Path
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
    assert "a generator, a debater or a refiner" in str(caught.value)


def prose_then_transcribe(call: scripted.ScriptCall) -> str:
    """Wrong in prose (as the tiny default model is on 17 * 24 + 3), right as an expression."""
    if call.role == "refiner" and "Expression:" in call.text:
        return "Expression: 17 * 24 + 3"
    return "17 * 24 + 3 = 408\nThe answer is 408."


async def test_a_program_aided_refiner_corrects_what_the_calculator_rejected(
    examples: Path,
) -> None:
    """The README's first command: prose answer rejected, the refiner's expression computed."""
    team = load_team(examples / "gvr_pal.yaml", model="scripted/p7")
    with scripted.use("p7", scripted.Script(default=prose_then_transcribe)) as script:
        result = await team.arun("What is 17 * 24 + 3?", reference="411")
    assert (result.answer, result.correct, result.stop_reason) == ("411", True,
                                                                    "verifier accepted")
    roles = [(s["role"], s["answer"]) for s in result.steps]
    assert roles == [("generator", "408"), ("verifier", "408"), ("refiner", "411"),
                     ("verifier", "411")]
    refiner = result.steps[2]
    assert refiner["parsed"]["program"] == "17 * 24 + 3"
    assert refiner["answer_changed"] is True and refiner["flip"] == "wrong->right"
    assert result.steps[3]["parsed"]["accepted"] is True
    # The refiner is told what the calculator found and asked for an expression.
    prompt = script.calls[1].text
    assert "the final answer 408 is not the value of 17 * 24 + 3" in prompt
    assert "'Expression: <arithmetic expression>'" not in script.calls[0].text
    assert "Expression: <expression>" in prompt


async def test_a_python_refiner_runs_its_program_in_the_sandbox() -> None:
    spec = {"name": "pal-refine", "strategy": "gvr", "answer": {"format": "number"},
            "roles": {"generator": {}, "verifier": {"check": "calculator"},
                      "refiner": {"program_aided": "python"}}}

    def reply(call: scripted.ScriptCall) -> str:
        if call.role == "refiner":
            assert "Previous solution:\n17 * 24 + 3 = 408" in call.prompt
            return "```python\nprint(17 * 24 + 3)\n```"
        return "17 * 24 + 3 = 408\nAnswer: 408"

    with scripted.use("p8", scripted.Script(default=reply)):
        result = await load_team(spec, model="scripted/p8").arun("What is 17 * 24 + 3?")
    assert result.answer == "411" and result.stop_reason == "verifier accepted"
    assert result.steps[2]["parsed"]["program"] == "print(17 * 24 + 3)"


async def test_a_prose_refiner_stays_prose() -> None:
    """Without ``program_aided`` the refiner's own (wrong) arithmetic is its answer: the lesson."""
    with scripted.use("p9", scripted.Script(default=prose_then_transcribe)) as script:
        result = await load_team(
            {"name": "prose", "strategy": "gvr", "limits": {"max_rounds": 1},
             "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}}},
            model="scripted/p9").arun("What is 17 * 24 + 3?")
    assert result.answer == "408" and result.stop_reason == "round limit (1) reached"
    assert "Expression:" not in script.calls[1].text


def test_find_program_copes_with_unclosed_code_blocks() -> None:
    assert find_program("```python\nprint(1 + 1)\n", "python") == "print(1 + 1)"
    assert find_program("no code here", "python") is None
    assert find_program("nothing to compute", "expression") is None
