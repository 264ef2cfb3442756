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
from concilium.spec import RoleSpec

__all__ = ["ANSWERING", "act"]

ANSWERING = tuple(name for name, kind in registry.kinds().items() if kind.answers)
"""The built-in role kinds whose result is an answer."""


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
    turn = Turn(
        task=state["task"], lessons=state.get("lessons"), round=state.get("round", 0),
        answer=Answer.model_validate(held) if held else Answer(text=""), held=held is not None,
        own=mine, sample=visits * len(order) + order.index(node), feedback=_feedback(state),
        verdict=state.get("verdict"), reflections=state.get("reflections", []),
        tests=state.get("tests"),
        answers=lambda kinds, but: _answers(state, kinds, but=but),
    )
    played = await registry.get(kind).node(ctx, node, spec, turn)
    result: dict[str, Any] = {"kind": kind, "visits": visits + 1, "at": len(state["steps"]),
                              **played.result}
    update: dict[str, Any] = {"answer": held} if held else {}  # re-stated: what was acted on
    update.update(played.shared)
    return {**update, "results": {node: result}, "steps": [played.step]}
