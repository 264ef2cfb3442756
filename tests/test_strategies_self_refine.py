"""``self_refine``: generate -> critique -> refine until the critic is satisfied, exactly."""

from __future__ import annotations

from typing import Any

from concilium import load_team
from concilium.agents.providers import scripted

TASK = "What is 17 * 24 + 3?"
WRONG = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
WRONG2 = "17 * 24 = 400. 400 + 3 = 403.\nAnswer: 403"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"


def team(**options: Any) -> dict[str, Any]:
    return {"name": "sr", "strategy": {"name": "self_refine", **options},
            "roles": {"generator": {}, "critic": {}, "refiner": {}}}


async def test_stops_at_once_when_the_critic_finds_no_issues() -> None:
    with scripted.use("sr1", scripted.Script({"generator": [RIGHT],
                                              "critic": ["NO ISSUES"]})) as script:
        result = await load_team(team(), model="scripted/sr1").arun(TASK)
    assert script.count("refiner") == 0
    assert result.stop_reason == "critic found no issues" and result.answer == "411"
    assert result.steps[-1]["parsed"] == {"issues": [], "should_change": False, "parsed": True}


async def test_refines_on_the_critics_issues_until_it_is_satisfied() -> None:
    replies = {"generator": [WRONG], "refiner": [RIGHT],
               "critic": ["- 17 * 24 is 408, not 398\n- so the sum is wrong", "NO ISSUES"]}
    with scripted.use("sr2", scripted.Script(replies)) as script:
        result = await load_team(team(), model="scripted/sr2").arun(TASK, reference="411")
    assert [s["role"] for s in result.steps] == ["generator", "critic", "refiner", "critic"]
    assert result.answer == "411" and result.rounds == 1
    assert result.steps[1]["parsed"]["issues"] == ["17 * 24 is 408, not 398", "so the sum is wrong"]
    assert "- 17 * 24 is 408, not 398" in script.calls[2].prompt  # the refiner got the issues
    assert result.flips == {"changed": 1, "right->wrong": 0, "wrong->right": 1}


async def test_stops_at_its_round_limit() -> None:
    script = scripted.Script({"generator": [WRONG]}, rules=[
        scripted.Rule("- still wrong", role="critic"), scripted.Rule(WRONG2, role="refiner")])
    with scripted.use("sr3", script):
        result = await load_team(team(rounds=2), model="scripted/sr3").arun(TASK)
    assert script.count("refiner") == 2 and script.count("critic") == 3
    assert result.stop_reason == "round limit (2) reached" and result.rounds == 2


async def test_records_a_refinement_that_broke_a_right_answer() -> None:
    replies = {"generator": [RIGHT], "critic": ["- recheck the sum", "NO ISSUES"],
               "refiner": [WRONG]}
    with scripted.use("sr4", scripted.Script(replies)):
        result = await load_team(team(), model="scripted/sr4").arun(TASK, reference="411")
    assert result.flips == {"changed": 1, "right->wrong": 1, "wrong->right": 0}
    assert result.correct is False


async def test_an_unreadable_critique_keeps_the_answer() -> None:
    with scripted.use("sr5", scripted.Script({"generator": [WRONG],
                                              "critic": ["Nice work, friend."]})) as script:
        result = await load_team(team(), model="scripted/sr5").arun(TASK)
    assert script.count("refiner") == 0
    assert result.stop_reason == "critic's reply not understood; answer kept"


async def test_bullets_that_praise_are_not_issues() -> None:
    critique = "- 17 * 24 = 408 is correct\n- the final answer is right"
    with scripted.use("sr6", scripted.Script({"generator": [RIGHT],
                                              "critic": [critique]})) as script:
        result = await load_team(team(), model="scripted/sr6").arun(TASK)
    assert script.count("refiner") == 0
    assert result.stop_reason == "critic found no issues" and result.answer == "411"


async def test_only_the_faulty_bullets_reach_the_refiner() -> None:
    critique = "- step 1 is correct\n- 17 * 24 is 408, not 398"
    replies = {"generator": [WRONG], "critic": [critique, "NO ISSUES"], "refiner": [RIGHT]}
    with scripted.use("sr7", scripted.Script(replies)) as script:
        result = await load_team(team(), model="scripted/sr7").arun(TASK)
    assert result.steps[1]["parsed"]["issues"] == ["17 * 24 is 408, not 398"]
    assert "step 1 is correct" not in script.calls[2].prompt
