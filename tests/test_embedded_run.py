"""``team.compile()`` embedded in plain LangGraph code carries the run like ``concilium run``.

A service that puts a team's compiled graph inside its own graph (a node calling
``ainvoke``, or the graph itself as a subgraph) gets the team's memory: lessons
recalled into the prompts, the run written to the ledger as it goes, and the team's
budgets enforced with the ledger saying why the run stopped. Nothing here calls
``Team.arun``.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from concilium import load_team
from concilium.agents.providers import scripted
from concilium.errors import BudgetExceeded
from concilium.graphs.state import RunState
from concilium.memory.ledger import find_run, list_runs
from concilium.memory.store import Memory

TASK = "How much do 24 pencils cost at 3 dollars each, plus a 5 dollar bag?"
LESSON = "Multiply the pencil price by the number of pencils before adding the bag."
WRONG = "24 * 3 = 62. 62 + 5 = 67.\nAnswer: 67"
RIGHT = "24 * 3 = 72. 72 + 5 = 77.\nAnswer: 77"


def team(name: str, **limits: Any) -> dict[str, Any]:
    return {
        "name": name,
        "strategy": "gvr",
        "limits": limits,
        "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}},
    }


@pytest.fixture
def memory(tmp_path: Path) -> Memory:
    memory = Memory.open(f"sqlite:///{tmp_path / 'embedded.db'}", redis_url=False)
    memory.remember(
        LESSON,
        task="How much do 12 pencils cost at 2 dollars each, plus a bag?",
        namespace="shop",
        outcome="failure",
        verified_by="ground_truth",
    )
    return memory


class Outer(TypedDict, total=False):
    """The service's own state: not a concilium state."""

    question: str
    reply: str | None
    log: Annotated[list[str], operator.add]


async def test_a_node_calling_the_graph_recalls_and_records(memory: Memory) -> None:
    spec = {**team("shop-team"), "memory": {"namespace": "shop"}}
    inner = load_team(spec, model="scripted/er1").compile(memory=memory)

    async def ask_team(state: Outer) -> Outer:
        final = await inner.ainvoke({"task": state["question"]})
        return {"reply": final["answer"]["value"], "log": ["team answered"]}

    builder = StateGraph(Outer)
    builder.add_node("ask_team", ask_team)
    builder.add_edge(START, "ask_team")
    builder.add_edge("ask_team", END)
    with scripted.use("er1", scripted.Script({"generator": [RIGHT]})):
        out = await builder.compile().ainvoke({"question": TASK})
    assert out["reply"] == "77" and out["log"] == ["team answered"]

    [row] = list_runs(memory.db, team="shop-team")
    run = find_run(memory.db, row.id)
    assert run is not None and run.status == "ok" and run.answer == "77"
    assert [s.role for s in run.steps] == ["generator", "verifier"]
    assert LESSON in run.steps[0].messages[-1]["content"]  # recalled into the prompt
    assert len(run.recalled) == 1


async def test_the_graph_as_a_subgraph_keeps_its_budget_and_the_ledger_says_so(
    memory: Memory,
) -> None:
    inner = load_team(team("tight", max_llm_calls=2), model="scripted/er2").compile(memory=memory)
    builder = StateGraph(RunState)
    builder.add_node("team", inner)  # the compiled team itself, as a subgraph
    builder.add_edge(START, "team")
    builder.add_edge("team", END)
    outer = builder.compile()
    script = scripted.Script({"generator": [WRONG]}, default=WRONG)
    with scripted.use("er2", script), pytest.raises(BudgetExceeded):
        await outer.ainvoke({"task": TASK, "steps": []})
    assert script.count() == 2  # generator, refiner: the third call was refused

    [row] = list_runs(memory.db, team="tight")
    assert row.status == "stopped" and row.stop_reason == "budget: max_llm_calls (2) reached"
    run = find_run(memory.db, row.id)
    assert run is not None
    assert [s.role for s in run.steps] == ["generator", "verifier", "refiner", "verifier"]


async def test_without_memory_the_graph_is_just_a_graph(tmp_path: Path) -> None:
    inner = load_team(team("bare"), model="scripted/er3").compile(memory=False)
    with scripted.use("er3", scripted.Script({"generator": [RIGHT]})):
        final = await inner.ainvoke({"task": TASK})
    assert final["answer"]["value"] == "77" and not final.get("lessons")
    assert not (tmp_path / ".concilium").exists()  # no default database was opened
