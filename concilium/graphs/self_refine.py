"""``self_refine`` (Madaan et al.): generate -> critique -> refine, until the critic is satisfied.

The critic returns a structured :class:`~concilium.agents.roles.results.Critique`
(the issues it found, whether the answer should change). The loop stops when it
finds none (or its reply cannot be read: revising on unstated feedback tends to
make answers worse) or after ``rounds`` refinements. Every refinement records
whether it flipped the answer right->wrong or wrong->right.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field

from concilium.agents.context import RunContext
from concilium.agents.roles.critic import critique
from concilium.agents.roles.generator import generate
from concilium.agents.roles.refiner import refine
from concilium.agents.roles.results import Answer, Critique
from concilium.graphs.state import RunState, TeamGraph
from concilium.spec import TeamSpec

ROLES = {"generator": True, "critic": True, "refiner": False}


class Options(BaseModel):
    """The refinement loop's own limit."""

    model_config = ConfigDict(extra="forbid")

    rounds: int | None = Field(
        None, ge=0, le=100, description="Refinements at most (default: limits.max_rounds)."
    )


def build(team: TeamSpec) -> TeamGraph:
    generator = team.role("generator")
    critic = team.role("critic")
    refiner = team.role("refiner", like="generator")
    options = Options.model_validate(team.strategy.options)
    rounds = team.limits.max_rounds if options.rounds is None else options.rounds

    async def generate_node(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        answer, step = await generate(runtime.context, "generator", generator, state["task"],
                                      lessons=state.get("lessons"))
        return {"answer": answer.model_dump(), "round": 0, "steps": [step]}

    async def critique_node(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        done = state.get("round", 0)
        found, step = await critique(runtime.context, "critic", critic, state["task"],
                                     Answer.model_validate(state["answer"]), round=done)
        stop = None
        if not found.should_change:
            stop = "critic found no issues" if found.parsed else \
                "critic's reply not understood; answer kept"
        elif done >= rounds:
            stop = f"round limit ({rounds}) reached"
        return {"critique": found.model_dump(), "stop_reason": stop, "steps": [step]}

    async def refine_node(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        issues = Critique.model_validate(state["critique"]).issues
        done = state.get("round", 0) + 1
        answer, step = await refine(runtime.context, "refiner", refiner, state["task"],
                                    Answer.model_validate(state["answer"]),
                                    "\n".join(f"- {issue}" for issue in issues),
                                    lessons=state.get("lessons"), round=done)
        return {"answer": answer.model_dump(), "round": done, "steps": [step]}

    def after_critique(state: RunState) -> str:
        return END if state.get("stop_reason") else "refiner"

    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("generator", generate_node)
    graph.add_node("critic", critique_node)
    graph.add_node("refiner", refine_node)
    graph.add_edge(START, "generator")
    graph.add_edge("generator", "critic")
    graph.add_conditional_edges("critic", after_critique, ["refiner", END])
    graph.add_edge("refiner", "critic")
    return graph
