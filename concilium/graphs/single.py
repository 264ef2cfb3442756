"""``single``: one generator call. The baseline every other strategy must beat."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict

from concilium.agents.context import RunContext
from concilium.agents.roles.generator import generate
from concilium.graphs.state import RunState, TeamGraph
from concilium.spec import TeamSpec

ROLES = {"generator": True}


class Options(BaseModel):
    """``single`` has no options."""

    model_config = ConfigDict(extra="forbid")


def build(team: TeamSpec) -> TeamGraph:
    generator = team.role("generator")

    async def generate_node(state: RunState, runtime: Runtime[RunContext]) -> dict:
        answer, step = await generate(
            runtime.context, "generator", generator, state["task"], lessons=state.get("lessons")
        )
        return {"answer": answer.model_dump(), "round": 0, "steps": [step], "stop_reason": "done"}

    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("generator", generate_node)
    graph.add_edge(START, "generator")
    graph.add_edge("generator", END)
    return graph
