"""``gvr`` (MALT): generator -> verifier -> refiner, looping while the verifier rejects.

The loop stops when the verifier accepts or after ``limits.max_rounds`` refinements,
whichever comes first; each refinement records whether it changed the answer.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict

from concilium.agents.context import RunContext
from concilium.agents.roles.generator import generate
from concilium.agents.roles.refiner import refine
from concilium.agents.roles.results import Answer, Verdict
from concilium.agents.roles.verifier import verify
from concilium.graphs.state import RunState, TeamGraph
from concilium.spec import TeamSpec

ROLES = {"generator": True, "verifier": True, "refiner": False}


class Options(BaseModel):
    """``gvr`` has no options; its loop is bounded by ``limits.max_rounds``."""

    model_config = ConfigDict(extra="forbid")


def build(team: TeamSpec) -> TeamGraph:
    generator = team.role("generator")
    verifier = team.role("verifier")
    refiner = team.role("refiner", like="generator")
    max_rounds = team.limits.max_rounds

    async def generate_node(state: RunState, runtime: Runtime[RunContext]) -> dict:
        answer, step = await generate(
            runtime.context, "generator", generator, state["task"], lessons=state.get("lessons")
        )
        return {"answer": answer.model_dump(), "round": 0, "steps": [step]}

    async def verify_node(state: RunState, runtime: Runtime[RunContext]) -> dict:
        rounds = state.get("round", 0)
        answer = Answer.model_validate(state["answer"])
        verdict, step = await verify(  # the tests reach the verifier, never the generator
            runtime.context, "verifier", verifier, state["task"], answer, round=rounds,
            tests=state.get("tests"),
        )
        stop = None
        if verdict.accepted:
            stop = "verifier accepted"
        elif rounds >= max_rounds:
            stop = f"round limit ({max_rounds}) reached"
        return {"verdict": verdict.model_dump(), "stop_reason": stop, "steps": [step]}

    async def refine_node(state: RunState, runtime: Runtime[RunContext]) -> dict:
        verdict = Verdict.model_validate(state["verdict"])
        previous = Answer.model_validate(state["answer"])
        answer, step = await refine(
            runtime.context, "refiner", refiner, state["task"], previous,
            verdict.feedback or verdict.reason, lessons=state.get("lessons"),
            round=state.get("round", 0) + 1,
        )
        return {"answer": answer.model_dump(), "round": state.get("round", 0) + 1, "steps": [step]}

    def after_verify(state: RunState) -> str:
        return END if state.get("stop_reason") else "refiner"

    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("generator", generate_node)
    graph.add_node("verifier", verify_node)
    graph.add_node("refiner", refine_node)
    graph.add_edge(START, "generator")
    graph.add_edge("generator", "verifier")
    graph.add_conditional_edges("verifier", after_verify, ["refiner", END])
    graph.add_edge("refiner", "verifier")
    return graph
