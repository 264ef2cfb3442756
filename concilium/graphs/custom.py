"""``strategy: graph``: a team wires its own graph in YAML.

``nodes`` are role instances from ``roles:`` (each with its own model, prompt and
tools); ``entry`` is the first node, or a list run in parallel; ``edges`` go
``from`` a node ``to`` a node, a list of nodes (run in parallel) or ``end``, taken
``when`` a condition from a small vocabulary (:mod:`concilium.graphs.conditions`)
holds on the state after the node ran. A node's edges are tried in order and the
first that holds is taken; when none does, the run finishes there (the node must
be listed in ``finish``). Parallel nodes cannot see each other's results, so test
``consensus`` in a node after they join; there, the current answer (the one a
verifier checks or a refiner revises) is that of the node listed first in ``nodes``
(default: ``roles:`` order), never that of whichever call happened to finish first.

A round is one pass around a cycle: the counter goes up each time an edge closes
a cycle (a back edge from the entry's depth-first search). ``rounds < N`` reads
it, and ``max_rounds`` (default ``limits.max_rounds``) ends the run when a back
edge would pass it. Load-time checks live in :mod:`concilium.graphs.custom_spec`.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from concilium.agents.context import RunContext
from concilium.graphs.conditions import parse_condition
from concilium.graphs.custom_nodes import act
from concilium.graphs.custom_spec import Options, back_edges, check
from concilium.graphs.state import RunState, TeamGraph
from concilium.spec import TeamSpec

__all__ = ["Options", "build", "check"]


def build(team: TeamSpec) -> TeamGraph:
    options = Options.model_validate(team.strategy.options)
    nodes = options.nodes or list(team.roles)
    entry = options.entry or nodes[:1]
    limit = team.limits.max_rounds if options.max_rounds is None else options.max_rounds
    back = back_edges(entry, options.edges)
    routes = {n: [(i, e, parse_condition(e.when)) for i, e in enumerate(options.edges)
                  if e.source == n] for n in nodes}

    def node_fn(name: str) -> Any:
        async def run(state: RunState, runtime: Runtime[RunContext]) -> Command:
            ctx = runtime.context
            update = await act(ctx, name, team.kind_of(name), team.roles[name], nodes, state)
            view = {**state, **update, "results": {**state.get("results", {}),
                                                   **update["results"]}}
            for i, edge, condition in routes[name]:
                if not condition.holds(view, ctx.same):
                    continue
                if i in back:
                    if state.get("round", 0) + 1 > limit:
                        reason = f"round limit ({limit}) reached at {name}"
                        return Command(update={**update, "stop_reason": reason}, goto=END)
                    update["round"] = state.get("round", 0) + 1
                targets = edge.targets()
                if END in targets:
                    update["stop_reason"] = f"{name} -> end ({condition.text})"
                return Command(update=update, goto=targets)
            return Command(update={**update, "stop_reason": f"finished at {name}"}, goto=END)

        return run

    graph = StateGraph(RunState, context_schema=RunContext)
    for name in nodes:
        labels: dict[str, str] = {}
        for _, edge, condition in routes[name]:
            for target in edge.targets():
                label = condition.label.replace("<", "&lt;").replace(">", "&gt;")
                labels[target] = " | ".join(x for x in (labels.get(target), label) if x)
        if name in options.finish:
            labels.setdefault(END, "")
        graph.add_node(name, node_fn(name), destinations=labels)
    for name in entry:
        graph.add_edge(START, name)
    return graph
