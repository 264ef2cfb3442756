"""What a node of a custom graph does, by the kind of its role. No control flow here.

Every node reads the shared state (the current answer, the last verdict or
critique, the other nodes' latest results), makes its one role call, and returns a
state update: its result under ``results[<node>]`` plus the shared field its kind
writes (``answer``, ``verdict``, ``critique``, ``decision`` or ``reflections``).
"""

from __future__ import annotations

from typing import Any

from concilium.agents.context import RunContext
from concilium.agents.roles import registry
from concilium.agents.roles.kind import Turn
from concilium.agents.roles.results import Answer
from concilium.graphs.state import RunState
from concilium.spec import RoleSpec, TeamSpec

__all__ = ["ANSWERING", "act"]

ANSWERING = (*(name for name, kind in registry.kinds().items() if kind.answers), "team")
"""Kinds whose result is an answer: the registered ones that say so, a team node (and
kinds the team declares with ``output: answer``, see :func:`_answering`)."""


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
    """Run node ``node`` (a role of ``kind``; ``order``: all nodes) once; return its update.

    What the node does is its kind's (``RoleKind.node``, from the registry); here is
    only what it sees of the state and where its result goes.
    """
    held = current(state, order)
    mine = (state.get("results") or {}).get(node, {})
    visits = mine.get("visits", 0)
    if kind == "team":
        return await _team_node(ctx, node, spec, state, held, mine, visits)
    if kind in ctx.team.kinds:
        return await _declared_node(ctx, node, spec, kind, state, held, mine, visits)
    turn = Turn(
        task=state["task"], lessons=state.get("lessons"), round=state.get("round", 0),
        answer=Answer.model_validate(held) if held else Answer(text=""), held=held is not None,
        own=mine, sample=visits * len(order) + order.index(node), feedback=_feedback(state),
        verdict=state.get("verdict"), reflections=state.get("reflections", []),
        tests=state.get("tests"),
        answers=lambda kinds, but: _answers(state, _answering(ctx, kinds), but=but),
    )
    played = await registry.get(kind).node(ctx, node, spec, turn)
    result: dict[str, Any] = {"kind": kind, "visits": visits + 1, "at": len(state["steps"]),
                              **played.result}
    update: dict[str, Any] = {"answer": held} if held else {}  # re-stated: what was acted on
    update.update(played.shared)
    return {**update, "results": {node: result}, "steps": [played.step]}


async def _team_node(ctx: RunContext, node: str, spec: RoleSpec, state: RunState,
                     held: dict[str, Any] | None, mine: dict[str, Any],
                     visits: int) -> dict[str, Any]:
    """A node that is a whole team (``team:``), run as a subgraph."""
    from concilium.graphs.subteam import run_team

    assert isinstance(spec.team, TeamSpec)  # inlined at load (concilium.loader)
    task, lessons = state["task"], state.get("lessons")
    result: dict[str, Any] = {"kind": "team", "visits": visits + 1, "at": len(state["steps"])}
    update: dict[str, Any] = {"answer": held} if held else {}
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


async def _declared_node(ctx: RunContext, node: str, spec: RoleSpec, kind: str,
                         state: RunState, held: dict[str, Any] | None, mine: dict[str, Any],
                         visits: int) -> dict[str, Any]:
    """A node of a kind the team file declares (``kinds:``): a prompt, a declared output."""
    from concilium.agents.roles.declared import perform

    result: dict[str, Any] = {"kind": kind, "visits": visits + 1, "at": len(state["steps"])}
    update: dict[str, Any] = {"answer": held} if held else {}
    current_answer = Answer.model_validate(held) if held else Answer(text="")
    output = ctx.team.kinds[kind].output
    parsed, step = await perform(ctx, node, spec, kind, state["task"], answer=current_answer,
                                 feedback=_feedback(state), lessons=state.get("lessons"),
                                 round=state.get("round", 0),
                                 answers=_answers(state, _answering(ctx, ANSWERING)),
                                 notes=[{"name": n, "text": r["text"]} for n, r in
                                        (state.get("results") or {}).items()
                                        if r.get("text") is not None and n != node])
    if output == "answer":
        update["answer"] = result["answer"] = parsed
    elif output == "verdict":
        update["verdict"] = result["verdict"] = parsed
        result["feedback"] = "" if parsed["accepted"] else parsed["feedback"] or parsed["reason"]
    elif output == "critique":
        update["critique"] = result["critique"] = parsed
        result["feedback"] = "\n".join(f"- {issue}" for issue in parsed["issues"])
    else:
        result["text"] = parsed["text"]
    return {**update, "results": {node: result}, "steps": [step]}
