"""The YAML of a custom graph (``strategy: graph``) and its load-time checks.

Everything a run could trip over is found here, before any model is called, and
reported with the exact field: unknown nodes or conditions, nodes never reached,
a finish that cannot be reached, a node with nowhere to go, a cycle with no limit.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from langgraph.graph import END, START
from pydantic import BaseModel, ConfigDict, Field, field_validator

from concilium.graphs.conditions import parse_condition
from concilium.teams import TeamSpec

__all__ = ["Edge", "Options", "back_edges", "check"]

Problem = tuple[tuple[Any, ...], str] | None
_STANDS_FOR = {"verdict": "verifier", "critique": "critic"}
"""The built-in kind whose conditions a team's own kind satisfies, by its ``output``."""


class Edge(BaseModel):
    """``{from: a, to: b | [b, c] | end, when: <condition>}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    when: str = "always"

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def targets(self) -> list[str]:
        return [END if t.lower() == "end" else t for t in self.to]


class Options(BaseModel):
    """The graph: its nodes, entry, finish points, edges and global round limit."""

    model_config = ConfigDict(extra="forbid")

    nodes: list[str] | None = Field(None, description="Role instances used (default: all).")
    entry: list[str] = Field(default_factory=list,
                             description="First node(s), run in parallel (default: the first).")
    finish: list[str] = Field(default_factory=list, description="Nodes the run may end after.")
    edges: list[Edge] = Field(default_factory=list)
    max_rounds: int | None = Field(None, ge=0, le=100, description="Global round limit.")

    @field_validator("entry", "finish", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def back_edges(entry: list[str], edges: list[Edge],
               skip: AbstractSet[int] = frozenset()) -> dict[int, list[str]]:
    """Edge index -> the cycle it closes, by depth-first search from the entry.

    Edges whose index is in ``skip`` are left out of the search.
    """
    found: dict[int, list[str]] = {}
    stack: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        stack.append(node)
        for index, edge in enumerate(edges):
            if index in skip:
                continue
            for target in (t for t in edge.targets() if edge.source == node and t != END):
                if target in stack:
                    found.setdefault(index, [*stack[stack.index(target):], target])
                elif target not in done:
                    visit(target)
        stack.pop()
        done.add(node)

    for node in entry:
        if node not in done:
            visit(node)
    return found


def check(spec: TeamSpec) -> Problem:
    """Every reference resolves, every node is reachable and can finish, every cycle is bounded."""
    options = Options.model_validate(spec.strategy.options)
    nodes = options.nodes or list(spec.roles)
    known = f"nodes: {', '.join(nodes)}"
    for i, node in enumerate(options.nodes or []):
        if node not in spec.roles:
            return ("strategy", "nodes", i), f"unknown node {node!r}: a node is a role from " \
                f"`roles:` ({', '.join(spec.roles) or 'none defined'})"
    if not nodes:
        return ("roles",), "a custom graph needs at least one role to use as a node"
    for field in ("entry", "finish"):
        for i, node in enumerate(getattr(options, field)):
            if node not in nodes:
                single = isinstance(spec.strategy.options.get(field), str)
                loc = ("strategy", field) if single else ("strategy", field, i)
                return loc, f"unknown node {node!r}; {known}"
    for i, edge in enumerate(options.edges):
        if edge.source not in nodes:
            return ("strategy", "edges", i, "from"), f"unknown node {edge.source!r}; {known}"
        for target in edge.to:
            if target not in nodes and target.lower() != "end":
                return ("strategy", "edges", i, "to"), \
                    f"unknown node {target!r}; {known}, or `end`"
        try:
            condition = parse_condition(edge.when)
        except ValueError as error:
            return ("strategy", "edges", i, "when"), str(error)
        kinds = {spec.kind_of(n) for n in nodes}
        kinds |= {_STANDS_FOR.get(spec.kinds[k].output, k) for k in kinds if k in spec.kinds}
        for kind in sorted(condition.needs - kinds):
            return ("strategy", "edges", i, "when"), \
                f"condition {edge.when!r} needs a {kind} node; this graph has none"
    return _check_shape(options, nodes)


def _check_shape(options: Options, nodes: list[str]) -> Problem:
    entry = options.entry or nodes[:1]
    after = {n: [t for e in options.edges if e.source == n for t in e.targets()] for n in nodes}
    after[START] = list(entry)
    for n in options.finish:
        after[n].append(END)

    def reach(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for target in after.get(todo.pop(), []):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    reached = reach(START)
    start = ", ".join(entry)
    if END not in reached:
        return ("strategy", "finish"), (f"the finish is unreachable: no edge to `end` and no "
                                        f"`finish` node can be reached from entry {start}")
    for n in nodes:
        if n not in reached:
            loc = ("strategy", "nodes", nodes.index(n)) if options.nodes else ("roles", n)
            return loc, f"node {n!r} is never reached from entry {start}"
        if END not in reach(n):
            return ("strategy", "edges"), f"from node {n!r} the run can never finish"
        edges = [e for e in options.edges if e.source == n]
        if n not in options.finish and all(parse_condition(e.when).text != "always"
                                           for e in edges):
            return ("strategy", "finish"), (f"node {n!r} has nowhere to go when none of its "
                                            "conditions hold: add an edge without `when` or "
                                            "list it in `finish`")
    if options.max_rounds is None:  # a cycle with no `rounds < N` edge on it is unbounded
        guarded = {i for i, e in enumerate(options.edges) if parse_condition(e.when).bounds_rounds}
        for i, cycle in back_edges(entry, options.edges, guarded).items():
            return ("strategy", "edges", i), (
                f"cycle {' -> '.join(cycle)} has no round limit: set strategy.max_rounds "
                "or add `when: rounds < N` to an edge of it")
    return None
