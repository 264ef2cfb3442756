"""``debate`` with ``form: simultaneous`` (Du et al.): debaters answer and revise in parallel.

Round one: every debater answers the task, all at once (``Send`` fan-out). Each
next round: every debater reads the others' previous answers and may revise, all
at once again. ``tally`` stops the debate on consensus or at the round limit; the
answer is the majority (ties: the first debater's), or the judge's pick.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from concilium.agents.context import RunContext
from concilium.agents.roles.debater import argue
from concilium.agents.roles.judge import judge
from concilium.agents.roles.results import Answer
from concilium.graphs.debate.common import Options, backed, panel, role_of
from concilium.graphs.state import RunState, TeamGraph
from concilium.graphs.votes import majority
from concilium.spec import TeamSpec


class Turn(TypedDict):
    """What one debater is sent (``Send``) for one round."""

    task: str
    lessons: list[str]
    index: int
    round: int
    own: dict[str, Any] | None
    others: list[dict[str, Any]]


def build_simultaneous(team: TeamSpec, options: Options) -> TeamGraph:
    """The simultaneous debate graph; ``debate.check`` has validated the team."""
    debaters = panel(team)
    size = len(debaters)
    judge_key, judge_spec = role_of(team, "judge")

    def last_round(state: RunState) -> list[dict[str, Any]]:
        turns = state.get("turns", [])
        latest = max((t["round"] for t in turns), default=-1)
        return sorted((t for t in turns if t["round"] == latest), key=lambda t: t["index"])

    def next_round(state: RunState) -> list[Send]:
        previous = last_round(state)
        number = previous[0]["round"] + 1 if previous else 0
        said = [{"name": t["debater"], **t["answer"]} for t in previous]
        return [Send("debater", {"task": state["task"], "lessons": state.get("lessons", []),
                                 "index": i, "round": number,
                                 "own": previous[i]["answer"] if previous else None,
                                 "others": [s for j, s in enumerate(said) if j != i]})
                for i in range(size)]

    async def turn(state: Turn, runtime: Runtime[RunContext]) -> dict[str, Any]:
        index, number = state["index"], state["round"]
        name, spec = debaters[index]
        own = Answer.model_validate(state["own"]) if state["own"] else None
        answer, step = await argue(runtime.context, name, spec, state["task"], own=own,
                                   others=state["others"], lessons=state["lessons"],
                                   round=number, sample=number * size + index)
        return {"turns": [{"debater": name, "index": index, "round": number,
                           "answer": answer.model_dump()}], "steps": [step]}

    def tally_round(state: RunState) -> dict[str, Any]:
        current = last_round(state)
        winner, ranking = majority(team, [t["answer"] for t in current])
        number = current[0]["round"]
        agreed = len(ranking) == 1 and ranking[0][1] == size
        stop = None
        if agreed and options.stop_on_consensus:
            stop = f"consensus in round {number + 1} on {ranking[0][0]}"
        elif number + 1 >= options.rounds:
            stop = f"round limit ({options.rounds}) reached; majority {dict(ranking)}"
        return {"answer": winner, "round": number, "stop_reason": stop,
                "report": {"consensus": agreed, "votes": dict(ranking)}}

    async def judge_node(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        current = last_round(state)
        said = [{"name": t["debater"], **t["answer"]} for t in current]
        held = state.get("answer") or {}
        decision, step = await judge(runtime.context, judge_key, judge_spec, state["task"], said,
                                     round=state.get("round", 0), previous=held.get("value"))
        if decision.answer is None:
            return {"stop_reason": f"{state['stop_reason']}; judge not understood, majority kept",
                    "steps": [step]}
        chosen = backed(runtime.context, said, decision)
        overruled = "" if runtime.context.same(held.get("value"), decision.answer) else \
            f", overruling the majority ({held.get('value')})"
        return {"answer": chosen, "steps": [step],
                "stop_reason": f"{state['stop_reason']}; judge chose {decision.answer}{overruled}"}

    def after_round(state: RunState) -> Any:
        if not state.get("stop_reason"):
            return next_round(state)
        needs_judge = options.final == "judge" and not state["report"]["consensus"]
        return "judge" if needs_judge else END

    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("debater", turn)
    graph.add_node("tally", tally_round)
    graph.add_conditional_edges(START, next_round, ["debater"])
    graph.add_edge("debater", "tally")
    if options.final == "judge":
        graph.add_node("judge", judge_node)
        graph.add_edge("judge", END)
    graph.add_conditional_edges("tally", after_round,
                                ["debater", END] + (["judge"] if options.final == "judge" else []))
    return graph
