"""``reflexion`` (Shinn et al.): trial -> evaluate -> reflect -> next trial, up to ``trials``.

The evaluator is the team's verifier: a tool check (``check: calculator`` or
``tests``), the ground-truth answer when one is given (``check: reference``), or an
LLM (``check: llm``). After a rejected trial the reflector turns the attempt and
the evaluator's feedback into a lesson, and every later trial has all lessons so
far in its prompt. Each trial after the first records whether it flipped the
answer. Reflections live in the run state; the memory layer persists them.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field

from concilium.agents.context import RunContext
from concilium.agents.roles.generator import generate
from concilium.agents.roles.reflector import reflect
from concilium.agents.roles.results import Answer, Verdict
from concilium.agents.roles.verifier import verify
from concilium.graphs.state import RunState, TeamGraph
from concilium.spec import TeamSpec

ROLES = {"generator": True, "verifier": True, "reflector": False}


class Options(BaseModel):
    """The trial loop's own limit."""

    model_config = ConfigDict(extra="forbid")

    trials: int = Field(3, ge=1, le=20, description="Trials at most, the first included.")


def build(team: TeamSpec) -> TeamGraph:
    generator = team.role("generator")
    evaluator = team.role("verifier")
    reflector = team.role("reflector")
    trials = Options.model_validate(team.strategy.options).trials

    async def trial(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        done = state.get("round", 0)
        before = (state.get("answer") or {}).get("value") if done else None
        answer, step = await generate(
            runtime.context, "generator", generator, state["task"], lessons=state.get("lessons"),
            reflections=state.get("reflections", []), round=done, sample=done,
            previous=before, revision=done > 0,
        )
        return {"answer": answer.model_dump(), "round": done, "steps": [step]}

    async def evaluate(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        done = state.get("round", 0)
        verdict, step = await verify(runtime.context, "verifier", evaluator, state["task"],
                                     Answer.model_validate(state["answer"]), round=done,
                                     tests=state.get("tests"))
        stop = None
        if verdict.accepted:
            stop = f"trial {done + 1} accepted by the {verdict.checked_by} check"
        elif done + 1 >= trials:
            stop = f"trial limit ({trials}) reached"
        return {"verdict": verdict.model_dump(), "stop_reason": stop, "steps": [step],
                "report": {"trials": done + 1}}

    async def reflect_node(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        done = state.get("round", 0)
        failed = Answer.model_validate(state["answer"])
        verdict = Verdict.model_validate(state["verdict"])
        lesson, step = await reflect(runtime.context, "reflector", reflector, state["task"],
                                     failed, verdict, reflections=state.get("reflections", []),
                                     round=done)
        return {"reflections": [lesson.text], "round": done + 1, "steps": [step]}

    def after_evaluate(state: RunState) -> str:
        return END if state.get("stop_reason") else "reflector"

    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("trial", trial)
    graph.add_node("evaluator", evaluate)
    graph.add_node("reflector", reflect_node)
    graph.add_edge(START, "trial")
    graph.add_edge("trial", "evaluator")
    graph.add_conditional_edges("evaluator", after_evaluate, ["reflector", END])
    graph.add_edge("reflector", "trial")
    return graph
