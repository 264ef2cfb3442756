"""The memory loop on the real default model: a reflexion team learns on one task, recalls on
a similar one. What the tiny model writes is not judged, only that the loop carries it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from patience import patient

from concilium import load_team
from concilium.memory.store import Memory
from concilium.teams import load_spec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama-cpp-python is not installed: pip install -e '.[local]'",
    ),
]

T1 = "A shop sells pencils at 37 cents each. How much do 86 pencils cost, plus a 9 cent bag?"
T2 = "A shop sells pencils at 29 cents each. How much do 64 pencils cost, plus a 7 cent bag?"


async def test_reflexion_on_the_local_model_recalls_its_lesson(examples: Path) -> None:
    data = load_spec(examples / "reflexion.yaml").model_dump(mode="json", exclude_none=True)
    data["strategy"] = {"name": "reflexion", "trials": 2}
    data["roles"]["verifier"] = {"check": "reference"}  # trials judged by the known answer
    data["roles"]["generator"]["max_tokens"] = 128
    # always: a lesson is written whether the tiny model gets it right or (likely) wrong.
    data["memory"] = {"remember": "always"}
    team = load_team(patient(data))

    first = await team.arun(T1, reference="3191")
    assert first.status == "ok" and first.remembered, first.steps[-1]
    memory = Memory.open()
    lessons = [memory.get(i) for i in first.remembered]
    assert all(x is not None and x.lesson and x.checked and x.model == "local/smollm2"
               for x in lessons)
    assert {x.verified_by for x in lessons} == {"ground_truth"}  # type: ignore[union-attr]

    second = await team.arun(T2, reference="1863")
    prompt = second.steps[0]["messages"][-1]["content"]
    assert second.steps[0]["model"] == "local/smollm2" and T2 in prompt
    assert "Lessons from earlier tasks" in prompt
    assert any(x.lesson in prompt for x in lessons if x is not None)
    assert second.lessons and set(second.lessons) <= {x.lesson for x in lessons if x}
