"""``self_consistency``: independent samples in parallel, then a majority vote (Wang et al.).

Fixed mode draws all ``samples`` at once. Adaptive mode (Adaptive-Consistency,
Blend-ASC) draws ``batch`` samples at a time and stops as soon as the leading
answer can no longer be overtaken by the samples left in the budget, or, with
``confidence`` set, as soon as the leader is the majority with that probability.
The run reports how many samples it saved. Ties go to the answer sampled first.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from pydantic import BaseModel, ConfigDict, Field

from concilium.agents.context import RunContext
from concilium.agents.roles.generator import generate
from concilium.graphs.state import RunState, TeamGraph
from concilium.graphs.votes import leader_confidence, majority
from concilium.spec import TeamSpec

ROLES = {"generator": True}


class Job(TypedDict):
    """What one sample is sent (``Send``): the task and its own sample id."""

    task: str
    lessons: list[str]
    sample: int
    batch: int


class Options(BaseModel):
    """How many samples, and when adaptive sampling may stop early."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(5, ge=1, le=64, description="Sample budget (all of it in fixed mode).")
    adaptive: bool = Field(False, description="Sample in batches; stop once the vote is decided.")
    batch: int = Field(2, ge=1, le=64, description="Samples per batch in adaptive mode.")
    confidence: float | None = Field(
        None, gt=0.5, lt=1.0,
        description="Adaptive mode also stops once P(leader is the majority) reaches this.",
    )


def check(spec: TeamSpec) -> tuple[tuple[Any, ...], str] | None:
    """Samples must differ (temperature > 0) and fit the call budget."""
    options = Options.model_validate(spec.strategy.options)
    if options.samples > 1 and spec.roles["generator"].temperature == 0:
        return ("roles", "generator", "temperature"), (
            "self_consistency needs temperature > 0 (e.g. 0.7): greedy samples are all the same"
        )
    if options.samples > spec.limits.max_llm_calls:
        return ("strategy", "samples"), (
            f"{options.samples} samples need {options.samples} model calls but "
            f"limits.max_llm_calls is {spec.limits.max_llm_calls}"
        )
    if options.confidence is not None and not options.adaptive:
        return ("strategy", "confidence"), "confidence only applies with `adaptive: true`"
    return None


def build(team: TeamSpec) -> TeamGraph:
    generator = team.role("generator")
    options = Options.model_validate(team.strategy.options)
    budget = options.samples
    size = options.batch if options.adaptive else budget

    def draw(state: RunState) -> list[Send]:
        done, batch = len(state.get("samples", [])), len(state.get("report", {}).get("votes", []))
        return [Send("sample", {"task": state["task"], "lessons": state.get("lessons", []),
                                "sample": done + i, "batch": batch})
                for i in range(min(size, budget - done))]

    async def sample(state: Job, runtime: Runtime[RunContext]) -> dict[str, Any]:
        answer, step = await generate(runtime.context, "generator", generator, state["task"],
                                      lessons=state["lessons"], sample=state["sample"],
                                      round=state["batch"])
        record = {"sample": state["sample"], "batch": state["batch"], "answer": answer.model_dump()}
        return {"samples": [record], "steps": [step]}

    async def vote(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        ctx = runtime.context
        drawn = sorted(state["samples"], key=lambda s: s["sample"])
        winner, ranking = majority(team, [s["answer"] for s in drawn])
        used, left = len(drawn), budget - len(drawn)
        lead = ranking[0][1] if ranking else 0
        second = ranking[1][1] if len(ranking) > 1 else 0
        confidence = leader_confidence(ranking)
        head = f"{winner.get('value')} leads {lead}-{second}" if ranking else "no answer yet"
        stop = None
        if left == 0:
            stop = f"all {budget} samples drawn; {head}" if ranking else "no sample gave an answer"
        elif ranking and lead - second > left:
            stop = f"vote decided after {used} of {budget} samples ({left} saved): {head}"
        elif ranking and options.confidence and confidence >= options.confidence:
            stop = (f"confidence {confidence:.3f} >= {options.confidence} after {used} of "
                    f"{budget} samples ({left} saved): {head}")
        votes = [*state.get("report", {}).get("votes", []), dict(ranking)]
        before = (state.get("answer") or drawn[0]["answer"]).get("value")
        step = ctx.step(node="vote", role="vote", round=len(votes) - 1, tool="majority vote",
                        output=stop or head, parsed={"votes": dict(ranking), "samples": used,
                                                     "confidence": confidence},
                        answer=winner.get("value"), previous=before, revision=True)
        report = {"votes": votes, "samples_used": used, "samples_budget": budget,
                  "samples_saved": left if stop else 0, "confidence": confidence}
        return {"answer": winner, "round": len(votes) - 1, "stop_reason": stop,
                "report": report, "steps": [step]}

    def after_vote(state: RunState) -> Any:
        return END if state.get("stop_reason") else draw(state)

    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("sample", sample)
    graph.add_node("vote", vote)
    graph.add_conditional_edges(START, draw, ["sample"])
    graph.add_edge("sample", "vote")
    graph.add_conditional_edges("vote", after_vote, ["sample", END])
    return graph
