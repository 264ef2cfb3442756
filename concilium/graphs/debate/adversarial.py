"""``debate`` with ``form: adversarial`` (MAD, Liang et al.): two sides argue in turn.

Each round the affirmative answers (or defends its answer against the negative's
last argument), then the negative attacks it and gives its own; then a moderator
says whether one side is clearly right. If so, that side's answer is final;
otherwise the debate goes on, and after ``rounds`` rounds a judge decides. The
turns are sequential by nature (each replies to the other); the two debaters may
call different models.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from concilium.agents.context import RunContext
from concilium.agents.roles.debater import argue
from concilium.agents.roles.judge import judge
from concilium.agents.roles.moderator import moderate
from concilium.agents.roles.results import Answer
from concilium.graphs.debate.common import backed, role_of
from concilium.graphs.state import RunState, TeamGraph
from concilium.spec import TeamSpec

SIDES = ("affirmative", "negative")


def build_adversarial(team: TeamSpec, rounds: int) -> TeamGraph:
    """The adversarial debate graph; ``debate.check`` has made sure there are two debaters."""
    debaters = [(key, team.roles[key]) for key in team.roles if team.kind_of(key) == "debater"]
    moderator_key, moderator = role_of(team, "moderator")
    judge_key, judge_spec = role_of(team, "judge")

    def latest(state: RunState, side: str) -> Answer | None:
        turns = [t for t in state.get("turns", []) if t["side"] == side]
        return Answer.model_validate(turns[-1]["answer"]) if turns else None

    def speaker(index: int) -> Any:
        side, (key, spec) = SIDES[index], debaters[index]

        async def speak(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
            number = state.get("round", 0)
            other = latest(state, SIDES[1 - index])
            answer, step = await argue(runtime.context, key, spec, state["task"],
                                       own=latest(state, side), side=side,
                                       opponent=other.text if other else "",
                                       lessons=state.get("lessons"), round=number,
                                       sample=2 * number + index)
            turn = {"debater": key, "side": side, "index": index, "round": number,
                    "answer": answer.model_dump()}
            return {"turns": [turn], "answer": answer.model_dump(), "steps": [step]}

        return speak

    async def moderate_node(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        number = state.get("round", 0)
        yes = latest(state, "affirmative") or Answer(text="")
        no = latest(state, "negative") or Answer(text="")
        decision, step = await moderate(runtime.context, moderator_key, moderator,
                                        state["task"], yes, no, round=number)
        update: dict[str, Any] = {"decision": decision.model_dump(), "steps": [step]}
        if decision.winner is not None:
            winner = yes if decision.winner == "affirmative" else no
            update["answer"] = winner.model_dump()
            update["stop_reason"] = (f"moderator: the {decision.winner} side is clearly right "
                                     f"(round {number + 1})")
        elif number + 1 >= rounds:
            update["stop_reason"] = f"round limit ({rounds}) reached"
        else:
            update["round"] = number + 1
        return update

    async def judge_node(state: RunState, runtime: Runtime[RunContext]) -> dict[str, Any]:
        said = [{"name": side, **answer.model_dump()} for side in SIDES
                if (answer := latest(state, side)) is not None]
        decision, step = await judge(runtime.context, judge_key, judge_spec, state["task"], said,
                                     round=state.get("round", 0), previous=said[0]["value"])
        if decision.answer is None:
            return {"answer": {k: said[0][k] for k in ("text", "value", "program")},
                    "stop_reason": f"{state['stop_reason']}; judge not understood, the "
                                   "affirmative's answer kept", "steps": [step]}
        return {"answer": backed(runtime.context, said, decision), "steps": [step],
                "stop_reason": f"{state['stop_reason']}; judge chose {decision.answer}"}

    def after_moderator(state: RunState) -> str:
        if (state.get("decision") or {}).get("winner"):
            return END
        return "judge" if state.get("stop_reason") else "affirmative"

    graph = StateGraph(RunState, context_schema=RunContext)
    graph.add_node("affirmative", speaker(0))
    graph.add_node("negative", speaker(1))
    graph.add_node("moderator", moderate_node)
    graph.add_node("judge", judge_node)
    graph.add_edge(START, "affirmative")
    graph.add_edge("affirmative", "negative")
    graph.add_edge("negative", "moderator")
    graph.add_conditional_edges("moderator", after_moderator, ["affirmative", "judge", END])
    graph.add_edge("judge", END)
    return graph
