"""A custom graph's node that is a whole team (``team: other.yaml``), run as a subgraph.

The inner team's graph is compiled without a checkpointer of its own and invoked
inside the node, so LangGraph runs it as a subgraph of the run: its checkpoints
live in the run's thread (under the node's namespace), a person it asks pauses the
whole run, and a resumed run picks the inner team up where it stopped.

Its steps are the run's steps (node names prefixed ``<node>/``, so the ledger and
``runs show`` tell them apart), its calls count against the run's budgets as well as
its own limits, and its final answer is the node's answer. It shares the run's id,
seed, call journal and response cache; it recalls and remembers nothing itself: the
run around it does.
"""

from __future__ import annotations

from typing import Any

from concilium.agents.context import RunContext, Step
from concilium.spec import TeamSpec

__all__ = ["run_team"]


_graphs: dict[int, tuple[TeamSpec, Any]] = {}


def _compiled(spec: TeamSpec) -> Any:
    """The inner team's compiled graph, once per spec object (a spec is immutable)."""
    known = _graphs.get(id(spec))
    if known is None or known[0] is not spec:
        from concilium.graphs import build_graph

        if len(_graphs) > 64:
            _graphs.clear()
        known = _graphs[id(spec)] = (spec, build_graph(spec).compile())
    return known[1]


def _prefixed(node: str, step: Step) -> Step:
    return {**step, "node": f"{node}/{step.get('node', '')}"}  # type: ignore[typeddict-item]


async def run_team(
    ctx: RunContext, node: str, spec: TeamSpec, task: str, *, lessons: list[str] | None = None
) -> dict[str, Any]:
    """Run team ``spec`` on ``task`` as node ``node``'s subgraph; return its final state.

    The returned ``steps`` carry prefixed node names; ``ctx``'s budgets are charged
    with the inner team's calls, tokens and cost.
    """
    ctx._check_budget()
    parent = ctx.on_step
    inner = RunContext(
        team=spec,
        run_id=ctx.run_id,
        default_model=ctx.team.model or ctx.default_model,
        reference=ctx.reference,
        reveal_reference=ctx.reveal_reference,
        seed=ctx.seed,
        cache=ctx.cache,
        journal=ctx.journal,
        on_step=(lambda step: parent(_prefixed(node, step))) if parent else None,
    )
    try:
        state = await _compiled(spec).ainvoke(
            {"task": task, "lessons": list(lessons or []), "steps": []}, context=inner
        )
    finally:
        ctx.llm_calls += inner.llm_calls
        ctx.tokens += inner.tokens
        ctx.cost += inner.cost
        await inner.aclose()  # its tools' MCP servers: nobody else holds this context
    return {**state, "steps": [_prefixed(node, s) for s in state.get("steps") or []]}
