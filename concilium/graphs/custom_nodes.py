"""What a node of a custom graph does, by the kind of its role. No control flow here.

Every node reads the shared state (the current answer, the last verdict or
critique, the other nodes' latest results), makes its one role call, and returns a
state update: its result under ``results[<node>]`` plus the shared field its kind
writes (``answer``, ``verdict``, ``critique``, ``decision`` or ``reflections``).
"""

from __future__ import annotations

from typing import Any

from concilium.agents.context import RunContext
from concilium.agents.roles.critic import critique
from concilium.agents.roles.debater import argue
from concilium.agents.roles.generator import generate
from concilium.agents.roles.judge import judge
from concilium.agents.roles.moderator import moderate
from concilium.agents.roles.refiner import refine
from concilium.agents.roles.reflector import reflect
from concilium.agents.roles.results import Answer, Verdict
from concilium.agents.roles.verifier import verify
from concilium.graphs.state import RunState
from concilium.teams import RoleSpec, TeamSpec

__all__ = ["ANSWERING", "act"]

ANSWERING = ("generator", "refiner", "debater", "team", "judge")
"""Role kinds whose result is an answer (and kinds the team declares with ``output:
answer``)."""


def _answering(ctx: RunContext, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``kinds`` plus the team's own kinds that give an answer."""
    return (*kinds, *(n for n, k in ctx.team.kinds.items() if k.output == "answer"))


def _answers(state: RunState, kinds: tuple[str, ...], but: str = "") -> list[dict[str, Any]]:
    return [{"name": node, **result["answer"]}
            for node, result in (state.get("results") or {}).items()
            if node != but and result.get("kind") in kinds and result.get("answer")]


def current(state: RunState, order: list[str]) -> dict[str, Any] | None:
    """The answer the next node works on: the newest one; after parallel nodes joined, the
    answer of the node listed first (so a join never depends on which call finished first).
    """
    found = [(r["at"], -order.index(n), r["answer"])
             for n, r in (state.get("results") or {}).items() if r.get("answer") and n in order]
    return max(found, key=lambda f: (f[0], f[1]))[2] if found else state.get("answer")


def _feedback(state: RunState) -> str:
    """The newest feedback: a rejecting verdict's or a critique's issues, whichever came last."""
    found = [r for r in (state.get("results") or {}).values() if r.get("feedback")]
    return max(found, key=lambda r: r["at"])["feedback"] if found else ""


async def act(ctx: RunContext, node: str, kind: str, spec: RoleSpec, order: list[str],
              state: RunState) -> dict[str, Any]:
    """Run node ``node`` (a role of ``kind``; ``order``: all nodes) once; return its update."""
    task, lessons, number = state["task"], state.get("lessons"), state.get("round", 0)
    held = current(state, order)
    current_answer = Answer.model_validate(held) if held else Answer(text="")
    index = order.index(node)
    mine = (state.get("results") or {}).get(node, {})
    visits = mine.get("visits", 0)
    result: dict[str, Any] = {"kind": kind, "visits": visits + 1, "at": len(state["steps"])}
    update: dict[str, Any] = {"answer": held} if held else {}  # re-stated: what was acted on
    if kind == "generator":
        answer, step = await generate(ctx, node, spec, task, lessons=lessons,
                                      reflections=state.get("reflections", []), round=number,
                                      sample=visits * len(order) + index,
                                      previous=current_answer.value,
                                      revision=held is not None)
        update["answer"] = result["answer"] = answer.model_dump()
    elif kind == "refiner":
        answer, step = await refine(ctx, node, spec, task, current_answer, _feedback(state),
                                    lessons=lessons, round=number)
        update["answer"] = result["answer"] = answer.model_dump()
    elif kind == "debater":
        own = Answer.model_validate(mine["answer"]) if mine.get("answer") else None
        answer, step = await argue(ctx, node, spec, task, own=own, lessons=lessons,
                                   others=_answers(state, _answering(ctx, ("debater", "generator",
                                                                           "team")), but=node),
                                   round=number, sample=visits * len(order) + index)
        update["answer"] = result["answer"] = answer.model_dump()
    elif kind == "judge":
        said = _answers(state, _answering(ctx, ANSWERING[:-1]))
        decision, step = await judge(ctx, node, spec, task, said, round=number,
                                     previous=current_answer.value)
        chosen = {"text": decision.text, "value": decision.answer, "program": None}
        if decision.answer is not None:
            update["answer"] = result["answer"] = chosen
    elif kind == "verifier":
        verdict, step = await verify(ctx, node, spec, task, current_answer, round=number,
                                     tests=state.get("tests"))
        update["verdict"] = result["verdict"] = verdict.model_dump()
        result["feedback"] = "" if verdict.accepted else verdict.feedback or verdict.reason
    elif kind == "critic":
        found, step = await critique(ctx, node, spec, task, current_answer, round=number)
        update["critique"] = result["critique"] = found.model_dump()
        result["feedback"] = "\n".join(f"- {issue}" for issue in found.issues)
    elif kind == "moderator":
        sides = [*_answers(state, ("debater",)), {"text": ""}, {"text": ""}]
        call, step = await moderate(ctx, node, spec, task, Answer(text=sides[0]["text"]),
                                    Answer(text=sides[1]["text"]), round=number)
        update["decision"] = result["decision"] = call.model_dump()
        if call.winner is not None:
            winner = sides[0 if call.winner == "affirmative" else 1]
            update["answer"] = result["answer"] = {k: winner.get(k)
                                                   for k in ("text", "value", "program")}
    elif kind == "team":
        from concilium.graphs.subteam import run_team

        assert isinstance(spec.team, TeamSpec)  # inlined at load (concilium.kinds)
        others = _answers(state, _answering(ctx, ("debater", "generator", "team")),
                          but=node) if visits else []
        asked = task if not others else "\n\n".join([
            task, "Solutions from the others:",
            *(f"[{o['name']}]\n{o['text']}" for o in others),
            "Check your reasoning against them and give an updated solution."])
        inner = await run_team(ctx, node, spec.team, asked, lessons=lessons)
        if inner.get("answer"):
            update["answer"] = result["answer"] = inner["answer"]
        result["stop_reason"] = inner.get("stop_reason")
        return {**update, "results": {node: result}, "steps": inner["steps"]}
    elif kind in ctx.team.kinds:
        from concilium.agents.roles.declared import perform

        output = ctx.team.kinds[kind].output
        parsed, step = await perform(ctx, node, spec, kind, task, answer=current_answer,
                                     feedback=_feedback(state), lessons=lessons, round=number,
                                     answers=_answers(state, _answering(ctx, ANSWERING)),
                                     notes=[{"name": n, "text": r["text"]} for n, r in
                                            (state.get("results") or {}).items()
                                            if r.get("text") is not None and n != node])
        if output == "answer":
            update["answer"] = result["answer"] = parsed
        elif output == "verdict":
            update["verdict"] = result["verdict"] = parsed
            result["feedback"] = "" if parsed["accepted"] else parsed["feedback"] or \
                parsed["reason"]
        elif output == "critique":
            update["critique"] = result["critique"] = parsed
            result["feedback"] = "\n".join(f"- {issue}" for issue in parsed["issues"])
        else:
            result["text"] = parsed["text"]
    else:  # reflector
        last = state.get("verdict")
        rejected = Verdict.model_validate(last) if last else Verdict(accepted=False)
        lesson, step = await reflect(ctx, node, spec, task, current_answer, rejected,
                                     reflections=state.get("reflections", []), round=number)
        update["reflections"] = [lesson.text]
        result["reflection"] = lesson.text
    return {**update, "results": {node: result}, "steps": [step]}
