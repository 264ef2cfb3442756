"""Memory that reads what it writes (issue 13): behaviors reach prompts, uses are counted,
lessons go to the roles the team names, and a harmful lesson is quarantined.

Everything runs through the real team, the real model door and the ``scripted/``
provider, so "in the prompt" means in the messages the provider received.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from memory_fixtures import db_url  # noqa: F401 - a fixture
from sqlalchemy import select
from typer.testing import CliRunner

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.cli import memory as memory_cli
from concilium.memory.distill import distill
from concilium.memory.ledger import flush
from concilium.memory.models import Behavior, MemoryUse, Reflection, StepRow
from concilium.memory.store import Memory
from concilium.memory.usefulness import newcombe, usefulness, wilson
from concilium.settings import get_settings

TASK = "A shop sells pencils at 17 cents each. How much do 24 pencils cost, plus a 3 cent bag?"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"
WRONG = "17 + 24 = 41.\nAnswer: 41"
PROCEDURE = "Multiply the unit price by the count before adding the bag."

runner = CliRunner()


@pytest.fixture
def memory(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Memory:  # noqa: F811
    """The settings' memory (what runs and the CLI open) on SQLite, then on PostgreSQL."""
    monkeypatch.setenv("CONCILIUM_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return Memory.open()


def _distilled(memory: Memory) -> int:
    """Three failed runs' lessons about pencils, distilled into one behavior; its id."""
    for i in range(3):
        memory.remember(
            f"Multiply the pencil price by the count first ({i}).",
            task=TASK.replace("24", str(20 + i)),
            namespace="shop",
            outcome="failure",
            verified_by="ground_truth",
            run_id=f"early-{i}",
            team="shop",
        )
    reply = f"NAME: multiply-first\nPROCEDURE: {PROCEDURE}"
    with scripted.use("distil", scripted.Script({"distiller": [reply]})):
        made = asyncio.run(distill(memory, namespace="shop", model="scripted/distil"))
    assert len(made) == 1
    return made[0].id


def test_a_distilled_behavior_reaches_the_prompt_and_its_use_is_counted(memory: Memory) -> None:
    behavior_id = _distilled(memory)
    team = load_team(
        {
            "name": "shop",
            "strategy": "self_refine",
            "limits": {"max_rounds": 1},
            "memory": {"recall_k": 0, "behaviors_k": 3, "behaviors_for": ["generator"]},
            "roles": {"generator": {}, "critic": {}, "refiner": {}},
        },
        model="scripted/shop",
    )
    script = scripted.Script(
        {"generator": ["17 * 30 = 510. 510 + 3 = 513.\nAnswer: 513"], "critic": ["NO ISSUES"]}
    )
    with scripted.use("shop", script):
        result = team.run(
            "How much do 30 pencils cost at 17 cents each, plus a 3 cent bag?", reference="513"
        )
    line = f"multiply-first: {PROCEDURE}"
    generator = [c for c in script.calls if c.role == "generator"]
    critic = [c for c in script.calls if c.role == "critic"]
    assert line in generator[0].prompt  # as the provider received it
    assert line not in critic[0].text  # the critic is not named in behaviors_for
    steps = {s["role"]: s for s in result.steps}
    assert steps["generator"]["behaviors"] == [behavior_id]
    assert steps["critic"]["behaviors"] == []
    flush()
    with memory.db.session() as session:
        row = session.get(Behavior, behavior_id)
        assert (row.use_count, row.right_count, row.wrong_count) == (1, 1, 0)
        assert sorted(row.source_runs) == ["early-0", "early-1", "early-2"]  # why it exists
        uses = session.execute(select(MemoryUse)).scalars().all()
        assert [(u.run_id, u.kind, u.item_id, u.correct) for u in uses] == [
            (result.run_id, "behavior", behavior_id, True)
        ]
        stored = session.execute(
            select(StepRow.role, StepRow.behaviors).where(StepRow.run_id == result.run_id)
        ).all()
        assert dict(stored)["generator"] == [behavior_id]
    listed = runner.invoke(memory_cli.app, ["behaviors", "--json"])
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.output.splitlines()[0])
    assert shown["uses"] == 1 and shown["right"] == 1 and shown["source_runs"]
    assert "1/1 right with vs 0/0 without" in shown["usefulness_detail"]


def test_a_behavior_that_shares_no_word_with_the_task_is_not_recalled(memory: Memory) -> None:
    _distilled(memory)
    team = load_team(
        {
            "name": "shop",
            "strategy": "single",
            "roles": {"generator": {}},
            "memory": {"recall_k": 0, "behaviors_k": 3},
        },
        model="scripted/shop",
    )
    script = scripted.Script({"generator": ["Answer: 4"]})
    with scripted.use("shop", script):
        result = team.run("What is 2 + 2?")
    assert "multiply-first" not in script.calls[0].text
    assert result.steps[0]["behaviors"] == []


def test_lessons_go_to_the_roles_the_team_file_names(memory: Memory) -> None:
    memory.remember(
        "Check the bag is added once.",
        task=TASK,
        namespace="shop",
        outcome="failure",
        verified_by="tool",
    )
    team = load_team(
        {
            "name": "shop",
            "strategy": "self_refine",
            "limits": {"max_rounds": 1},
            "memory": {"lessons_for": ["critic"]},
            "roles": {"generator": {}, "critic": {}, "refiner": {}},
        },
        model="scripted/shop",
    )
    script = scripted.Script({"generator": [RIGHT], "critic": ["NO ISSUES"]})
    with scripted.use("shop", script):
        team.run(TASK, reference="411")
    by_role = {c.role: c.text for c in script.calls}
    assert "Check the bag is added once." in by_role["critic"]
    assert "Check the bag is added once." not in by_role["generator"]
    flush()
    lesson = memory.lessons(namespace="shop")[0]
    assert lesson.use_count == 1  # it reached a prompt (the critic's): it was used


def test_the_wilson_and_newcombe_intervals() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # the textbook value
    low, high = newcombe(56, 70, 48, 80, z=1.96)  # Newcombe (1998), table II, example (a)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    low, high = newcombe(0, 10, 10, 10)
    assert low >= -1 and high < 0
    low, high = newcombe(5, 10, 5, 10)
    assert low < 0 < high


BAD = "Always add the numbers instead of multiplying them."


def test_a_lesson_that_makes_runs_fail_is_quarantined_and_can_be_restored(memory: Memory) -> None:
    team = load_team(
        {"name": "shop", "strategy": "single", "roles": {"generator": {}}}, model="scripted/shop"
    )
    # The model follows the bad lesson whenever it is in its prompt.
    script = scripted.Script(
        rules=[scripted.Rule(WRONG, match="Always add the numbers"), scripted.Rule(RIGHT)]
    )

    def runs(n: int) -> list[bool | None]:
        with scripted.use("shop", script):
            return [team.run(TASK, reference="411").correct for _ in range(n)]

    assert runs(10) == [True] * 10  # comparable runs without the lesson
    bad = memory.remember(
        BAD, task=TASK, namespace="shop", outcome="failure", verified_by="ground_truth"
    )
    assert runs(10) == [False] * 10  # every run that reads it goes wrong
    flush()
    with memory.db.session() as session:
        row = session.get(Reflection, bad)
        assert row.quarantined, "ten wrong runs against ten right ones must quarantine it"
        assert "0/10 right with vs 10/10 without" in (row.quarantine_reason or "")
    stats = usefulness(memory, "lesson", bad)
    assert (stats.runs_with, stats.right_with, stats.runs_without) == (10, 0, 10)
    assert memory.recall(TASK, namespace="shop") == []  # kept, not recalled
    assert memory.get(bad) is not None
    assert runs(1) == [True]
    shown = runner.invoke(memory_cli.app, ["show", str(bad)])
    assert "quarantined (automatic: 0/10 right with vs 10/10 without" in " ".join(
        shown.output.split()
    )
    restored = runner.invoke(memory_cli.app, ["restore", str(bad)])
    assert restored.exit_code == 0, restored.output
    assert [lesson.id for lesson in memory.recall(TASK, namespace="shop")] == [bad]
    again = runner.invoke(memory_cli.app, ["quarantine", str(bad), "--reason", "bad advice"])
    assert again.exit_code == 0 and memory.recall(TASK, namespace="shop") == []
    assert runner.invoke(memory_cli.app, ["quarantine", "999"]).exit_code == 1


def test_a_helpful_lesson_is_not_quarantined(memory: Memory) -> None:
    team = load_team(
        {"name": "shop", "strategy": "single", "roles": {"generator": {}}}, model="scripted/shop"
    )
    good = "Multiply before adding the bag."
    script = scripted.Script(
        rules=[scripted.Rule(RIGHT, match="Multiply before adding"), scripted.Rule(WRONG)]
    )
    with scripted.use("shop", script):
        assert [team.run(TASK, reference="411").correct for _ in range(10)] == [False] * 10
        memory.remember(
            good, task=TASK, namespace="shop", outcome="failure", verified_by="ground_truth"
        )
        assert [team.run(TASK, reference="411").correct for _ in range(10)] == [True] * 10
    flush()
    lesson = memory.lessons(namespace="shop")[0]
    assert lesson.use_count == 10
    with memory.db.session() as session:
        assert not session.get(Reflection, lesson.id).quarantined


def test_a_quarantined_behavior_is_not_recalled_until_restored(memory: Memory) -> None:
    from concilium.memory.behaviors import recall_behaviors

    behavior_id = _distilled(memory)
    assert [b.id for b in recall_behaviors(memory, TASK, namespace="shop", k=3)] == [behavior_id]
    done = runner.invoke(memory_cli.app, ["quarantine", "--behavior", str(behavior_id)])
    assert done.exit_code == 0, done.output
    assert recall_behaviors(memory, TASK, namespace="shop", k=3) == []
    shown = json.loads(runner.invoke(memory_cli.app, ["behaviors", "--json"]).output)
    assert shown["quarantined"] and shown["quarantine_reason"] == "by hand"
    assert runner.invoke(memory_cli.app, ["restore", "-b", str(behavior_id)]).exit_code == 0
    assert [b.id for b in recall_behaviors(memory, TASK, namespace="shop", k=3)] == [behavior_id]
