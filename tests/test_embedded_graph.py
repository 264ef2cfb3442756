"""A team's compiled graph embedded like any LangGraph graph, and ``Team.run`` in a loop.

Services embed ``team.compile()`` and call ``ainvoke`` without knowing about
:class:`RunContext`; notebooks call ``team.run()`` inside Jupyter's running loop.
Both used to fail: the first with an ``AttributeError`` inside a node, the second
with ``asyncio.run() cannot be called from a running event loop``.
"""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from concilium import load_team
from concilium.agents.context import RunContext
from concilium.agents.providers import scripted
from concilium.graphs.state import RunState

TASK = "What is 17 * 24 + 3?"
RIGHT = "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411"


def single(**limits: Any) -> dict[str, Any]:
    return {"name": "emb", "strategy": "single", "limits": limits, "roles": {"generator": {}}}


def gvr() -> dict[str, Any]:
    return {"name": "emb-gvr", "strategy": "gvr",
            "roles": {"generator": {}, "verifier": {"check": "calculator"}, "refiner": {}}}


async def test_compiled_graph_runs_without_a_context() -> None:
    team = load_team(gvr(), model="scripted/e1")
    with scripted.use("e1", scripted.Script({"generator": [RIGHT]})):
        state = await team.compile().ainvoke({"task": TASK})
    assert state["answer"]["value"] == "411"
    assert [s["role"] for s in state["steps"]] == ["generator", "verifier"]


async def test_each_run_without_a_context_gets_its_own_budget() -> None:
    graph = load_team(single(max_llm_calls=1), model="scripted/e2").compile()
    with scripted.use("e2", scripted.Script({"generator": [RIGHT, RIGHT]})) as script:
        first = await graph.ainvoke({"task": TASK})
        second = await graph.ainvoke({"task": TASK})  # a shared context would be over budget
    assert first["answer"]["value"] == second["answer"]["value"] == "411"
    assert script.count() == 2


async def test_streaming_and_a_copy_with_a_checkpointer_keep_the_default() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    team = load_team(single(), model="scripted/e3")
    graph = team.compile().copy(update={"checkpointer": InMemorySaver()})
    config = {"configurable": {"thread_id": "t1"}}
    with scripted.use("e3", scripted.Script({"generator": [RIGHT]})):
        chunks = [c async for c in graph.astream({"task": TASK}, config, stream_mode="custom")]
    assert [c["step"]["role"] for c in chunks] == ["generator"]
    assert (await graph.aget_state(config)).values["answer"]["value"] == "411"


@dataclass
class Service:
    """A parent graph's own context, which is not a RunContext."""

    user: str = "someone"


class Outer(TypedDict, total=False):
    task: str
    answer: str | None
    log: Annotated[list[str], operator.add]


async def test_a_team_inside_a_node_of_a_graph_with_another_context() -> None:
    team_graph = load_team(single(), model="scripted/e4").compile()

    async def ask_team(state: Outer, runtime: Runtime[Service]) -> dict[str, Any]:
        out = await team_graph.ainvoke({"task": state["task"]})
        return {"answer": out["answer"]["value"], "log": [runtime.context.user]}

    parent = StateGraph(Outer, context_schema=Service)
    parent.add_node("ask_team", ask_team)
    parent.add_edge(START, "ask_team")
    parent.add_edge("ask_team", END)
    with scripted.use("e4", scripted.Script({"generator": [RIGHT]})):
        state = await parent.compile().ainvoke({"task": TASK}, context=Service("ana"))
    assert state["answer"] == "411" and state["log"] == ["ana"]


async def test_a_team_as_a_subgraph_node() -> None:
    team_graph = load_team(single(), model="scripted/e5").compile()
    parent = StateGraph(RunState, context_schema=Service)
    parent.add_node("team", team_graph)
    parent.add_edge(START, "team")
    parent.add_edge("team", END)
    with scripted.use("e5", scripted.Script({"generator": [RIGHT]})):
        state = await parent.compile().ainvoke({"task": TASK}, context=Service())
    assert state["answer"]["value"] == "411"


async def test_an_explicit_context_is_still_used() -> None:
    team = load_team(single(), model="scripted/e6")
    seen: list[str] = []
    ctx = team.context(run_id="mine", on_step=lambda step: seen.append(step["role"]))
    with scripted.use("e6", scripted.Script({"generator": [RIGHT]})):
        await team.compile().ainvoke({"task": TASK}, context=ctx)
    assert seen == ["generator"] and isinstance(ctx, RunContext) and ctx.llm_calls == 1


def test_run_works_inside_a_running_event_loop() -> None:
    team = load_team(single(), model="scripted/e7")

    async def notebook_cell() -> Any:
        return team.run(TASK)  # Jupyter runs cells inside its own loop

    with scripted.use("e7", scripted.Script({"generator": [RIGHT]})):
        result = asyncio.run(notebook_cell())
    assert result.answer == "411" and result.status == "ok"


def test_run_without_a_loop_still_runs_on_this_thread() -> None:
    import threading

    team = load_team(single(), model="scripted/e8")
    threads: list[str] = []
    with scripted.use("e8", scripted.Script(rules=[scripted.Rule(
            lambda call: threads.append(threading.current_thread().name) or RIGHT)])):
        assert team.run(TASK, memory=False).answer == "411"
    assert threads and not threads[0].startswith("concilium-run")
