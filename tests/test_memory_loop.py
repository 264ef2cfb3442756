"""Teams get better across runs: a lesson learned on one task is recalled on a similar one.

The scripted model makes each step exact; the same loop on the real local model is in
``tests/integration/test_memory_local_model.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.memory.ledger import find_run
from concilium.memory.store import Memory
from concilium.teams import load_spec

T1 = "A shop sells pencils at 17 cents each. How much do 24 pencils cost, plus a 3 cent bag?"
T2 = "A shop sells pencils at 18 cents each. How much do 25 pencils cost, plus a 4 cent bag?"
UNRELATED = "A train travels 60 km per hour for 7 hours. How far does the train go?"
WRONG1 = "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"
RIGHT1 = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
RIGHT2 = "18 * 25 = 450. 450 + 4 = 454.\nAnswer: 454"
REFLECTION = "Reflection: I multiplied carelessly; recompute every product before adding."
LESSON = "I multiplied carelessly; recompute every product before adding."


def reflexion_team(examples: Path, model: str, **changes: Any) -> Any:
    data = load_spec(examples / "reflexion.yaml").model_dump(mode="json", exclude_none=True)
    data.update(changes)
    return load_team(data, model=model)


async def test_reflexion_fails_stores_a_lesson_and_recalls_it_on_a_similar_task(
    examples: Path,
) -> None:
    team = reflexion_team(examples, "scripted/loop1")
    replies = {"generator": [WRONG1, WRONG1, WRONG1, RIGHT2],
               "reflector": [REFLECTION, REFLECTION]}
    with scripted.use("loop1", scripted.Script(replies)) as script:
        first = await team.arun(T1, reference="411")
        assert first.correct is False and first.lessons == []
        assert [s["role"] for s in first.steps] == ["generator", "verifier", "reflector",
                                                    "generator", "verifier", "reflector",
                                                    "generator", "verifier"]
        assert len(first.remembered) == 2  # a lesson per rejected trial but the last
        second = await team.arun(T2, reference="454")
    memory = Memory.open()
    lessons = [memory.get(i) for i in first.remembered]
    assert {(x.lesson, x.outcome, x.verified_by, x.namespace, x.run_id)  # type: ignore[union-attr]
            for x in lessons} == {(LESSON, "failure", "tool", "reflexion", first.run_id)}
    # The second run's very first prompt carries the lesson.
    prompt = script.calls[5].text
    assert script.calls[5].role == "generator" and T2 in prompt
    assert "Lessons from earlier tasks" in prompt and prompt.count(LESSON) == 1  # said once
    assert LESSON in second.steps[0]["messages"][-1]["content"]
    assert second.correct is True and LESSON in second.lessons
    run = find_run(memory.db, second.run_id)
    assert run is not None and len(run.recalled) == 1 and run.recalled[0] in first.remembered
    # Recalling it was followed by a right answer: that is counted.
    assert memory.get(run.recalled[0]).success_count == 1  # type: ignore[union-attr]
    # An unrelated task recalls nothing.
    with scripted.use("loop1", scripted.Script({"generator": ["60 * 7 = 420.\nAnswer: 420"]})):
        third = await team.arun(UNRELATED)
    assert third.lessons == []


async def test_lessons_checked_only_by_an_llm_are_not_recalled(examples: Path) -> None:
    data = load_spec(examples / "reflexion.yaml").model_dump(mode="json", exclude_none=True)
    data["roles"]["verifier"] = {"check": "llm"}
    data["strategy"] = {"name": "reflexion", "trials": 2}
    team = load_team(data, model="scripted/loop2")
    replies = {"generator": [WRONG1, WRONG1, RIGHT2], "reflector": [REFLECTION],
               "verifier": ["VERDICT: incorrect", "VERDICT: incorrect", "VERDICT: correct"]}
    with scripted.use("loop2", scripted.Script(replies)) as script:
        first = await team.arun(T1)  # no reference: only the LLM verifier judged it
        second = await team.arun(T2)
    stored = Memory.open().get(first.remembered[0])
    assert stored is not None and stored.verified_by == "llm" and not stored.checked
    assert second.lessons == [] and LESSON not in script.calls[-2].text


def gvr_team(model: str, **memory: Any) -> Any:
    return load_team({
        "name": "gvr-memory", "strategy": "gvr", "limits": {"max_rounds": 1},
        "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}},
        **({"memory": memory} if memory else {}),
    }, model=model)


async def test_gvr_with_the_run_end_reflector_learns_from_a_failure() -> None:
    team = gvr_team("scripted/loop3", remember="on_failure")
    replies = {"generator": [WRONG1, RIGHT2], "refiner": [WRONG1], "reflector": [REFLECTION]}
    with scripted.use("loop3", scripted.Script(replies)) as script:
        first = await team.arun(T1, reference="411")
        second = await team.arun(T2, reference="454")
    assert first.steps[-1]["role"] == "reflector" and first.usage.llm_calls == 3
    reflector_prompt = script.calls[2].text
    assert script.calls[2].role == "reflector" and T1 in reflector_prompt
    assert "411" not in reflector_prompt  # the reference answer never reaches a lesson
    assert LESSON in second.lessons and LESSON in script.calls[3].text
    assert second.remembered == []  # it succeeded: on_failure writes nothing
    assert [s["role"] for s in second.steps] == ["generator", "verifier"]


async def test_remember_always_learns_from_success_too_and_never_learns_nothing() -> None:
    always = gvr_team("scripted/loop4", remember="always", namespace="shared-shop")
    replies = {"generator": [RIGHT1], "reflector": ["Reflection: multiply, then add the bag."]}
    with scripted.use("loop4", scripted.Script(replies)) as script:
        result = await always.arun(T1, reference="411")
    assert script.calls[-1].role == "reflector" and "found right" in script.calls[-1].text
    lesson = Memory.open().get(result.remembered[0])
    assert lesson is not None and lesson.outcome == "success"
    assert lesson.namespace == "shared-shop"
    never = gvr_team("scripted/loop5", remember="never", namespace="shared-shop")
    with scripted.use("loop5", scripted.Script({"generator": [WRONG1], "refiner": [WRONG1]})):
        failed = await never.arun(T2, reference="454")
    assert failed.correct is False and failed.remembered == []
    assert failed.lessons == ["multiply, then add the bag."]  # it shares the namespace


async def test_a_team_without_a_reflector_remembers_nothing_by_default() -> None:
    team = gvr_team("scripted/loop6")
    with scripted.use("loop6", scripted.Script({"generator": [WRONG1], "refiner": [WRONG1]})):
        result = await team.arun(T1, reference="411")
    assert result.correct is False and result.remembered == []
    assert "reflector" not in [s["role"] for s in result.steps]


async def test_namespaces_isolate_teams(examples: Path) -> None:
    memory = Memory.open()
    memory.remember(LESSON, task=T1, namespace="team-x", outcome="failure",
                    verified_by="ground_truth")
    mine = gvr_team("scripted/loop7", namespace="team-x")
    theirs = gvr_team("scripted/loop7", namespace="team-y")
    with scripted.use("loop7", scripted.Script(default=RIGHT2)):
        assert (await mine.arun(T2)).lessons == [LESSON]
        assert (await theirs.arun(T2)).lessons == []
        assert (await mine.arun(T2, lessons=["given"])).lessons == ["given"]


@pytest.mark.parametrize("bad", [{"remember": "sometimes"}, {"recall_k": -1}, {"colour": 1}])
def test_memory_section_is_validated(bad: dict[str, Any]) -> None:
    from concilium.errors import TeamFileError

    with pytest.raises(TeamFileError, match="memory"):
        gvr_team("scripted/x", **bad)
