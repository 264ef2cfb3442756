"""Strategies: one module each, each builds a LangGraph ``StateGraph``.

A strategy module provides:

- ``ROLES``: role keys it uses, mapped to ``True`` when required, and/or
  ``check(spec) -> (loc, message) | None`` for rules a fixed role set cannot state;
- ``Options``: a pydantic model (extra keys forbidden) for ``strategy:`` options;
- ``build(team) -> StateGraph``.

A new strategy: one module here with those three (a strategy with several forms is a
package, like ``debate/``), named in :data:`STRATEGIES`. Graphs decide control flow
and nothing else: roles make the calls, :mod:`concilium.run` runs the graph.

Modules are imported on first use so ``concilium --help`` stays fast.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from concilium.spec import TeamSpec

__all__ = ["STRATEGIES", "build_graph", "check_kinds", "check_team", "strategy_module"]

STRATEGIES: dict[str, str] = {
    "single": "concilium.graphs.single",
    "gvr": "concilium.graphs.gvr",
    "self_consistency": "concilium.graphs.self_consistency",
    "self_refine": "concilium.graphs.self_refine",
    "debate": "concilium.graphs.debate",
    "reflexion": "concilium.graphs.reflexion",
    "graph": "concilium.graphs.custom",
}
"""Strategy name -> module path."""


def strategy_module(name: str) -> ModuleType:
    if name not in STRATEGIES:
        raise KeyError(name)
    return importlib.import_module(STRATEGIES[name])


def check_team(spec: TeamSpec) -> tuple[tuple[Any, ...], str] | None:
    """The first problem of a structurally valid team against the role kinds and its
    strategy, as ``(loc, message)``."""
    from concilium.agents.prompts import check_prompt

    problem = check_kinds(spec)
    if problem is not None:
        return problem
    name = spec.strategy.name
    if name not in STRATEGIES:
        return ("strategy", "name"), (
            f"unknown strategy {name!r}; valid strategies: {', '.join(STRATEGIES)}"
        )
    module = strategy_module(name)
    try:
        module.Options.model_validate(spec.strategy.options)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        loc = ("strategy", *first["loc"])
        if first["type"] == "extra_forbidden" and len(first["loc"]) > 1:
            return loc, f"unknown field {first['loc'][-1]!r}"
        if first["type"] == "extra_forbidden":
            valid = ", ".join(module.Options.model_fields) or "none"
            return loc, f"unknown option {first['loc'][-1]!r} of {name}; valid options: {valid}"
        return loc, first["msg"].removeprefix("Value error, ")
    roles: dict[str, bool] | None = getattr(module, "ROLES", None)
    if roles is not None:  # a fixed role set; ``check`` (below) may add rules of its own
        missing = [key for key, required in roles.items() if required and key not in spec.roles]
        if missing:
            return ("roles",), f"strategy {name} needs role(s): {', '.join(missing)}"
        for key in spec.roles:
            if key not in roles:
                return ("roles", key), (
                    f"strategy {name} has no role {key!r}; its roles: {', '.join(roles)}"
                )
    custom = getattr(module, "check", None)
    if custom is not None:
        problem = custom(spec)
        if problem is not None:
            return problem
    for key, role in spec.roles.items():
        if role.prompt is not None:
            kind = spec.kind_of(key)
            problem = check_prompt(kind, role.prompt, allowed_variables(spec, kind))
            if problem is not None:
                return ("roles", key, "prompt", problem[0]), problem[1]
    for name, declared in spec.kinds.items():
        problem = check_prompt(name, declared.prompt, allowed_variables(spec, name))
        if problem is not None:
            return ("kinds", name, "prompt", problem[0]), problem[1]
    if any(role.interrupt for role in spec.roles.values()):
        from concilium.graphs.gates import gated_nodes

        try:
            gated_nodes(module.build(spec), spec)
        except KeyError as missing:
            key = str(missing.args[0])
            return ("roles", key, "interrupt"), (
                f"{name} has no node of role {key!r} to pause at; gate a role that is a "
                "node of its own (its key or kind names a node of the graph)")
    return None


def allowed_variables(spec: TeamSpec, kind: str) -> frozenset[str]:
    """The template variables a ``kind`` role's prompt may use in team ``spec``: a kind
    the team declares (``kinds:``) gets the declared ones, a registered kind its own."""
    from concilium.agents.prompts import DECLARED_VARIABLES, HUMAN_VARIABLES
    from concilium.agents.roles import registry
    from concilium.agents.roles.kind import COMMON_VARIABLES

    if kind in spec.kinds:
        return frozenset(DECLARED_VARIABLES)
    if kind == "human":
        return frozenset(HUMAN_VARIABLES)
    known = registry.kinds().get(kind)
    return known.allowed if known is not None else COMMON_VARIABLES


def check_kinds(spec: TeamSpec) -> tuple[tuple[Any, ...], str] | None:
    """Every role's kind is registered (or declared by the team, or a person or a team
    node), and asks only for what its kind can do; ``memory.*_for`` name kinds or roles."""
    from concilium.agents.roles import registry
    from concilium.kinds import check_kinds as check_team_kinds

    problem = check_team_kinds(spec)
    if problem is not None:
        return _located(problem)
    known = registry.kinds()
    for key, role in spec.roles.items():
        if role.team is not None:
            continue
        kind = known.get(spec.kind_of(key))
        if role.check is not None and (kind is None or not kind.checks):
            return ("roles", key, "check"), "only a verifier has `check`"
        for i, tool in enumerate(role.tools):
            server = tool[4:].partition("/")[0] if tool.startswith("mcp:") else None
            if server is not None and server not in spec.mcp:
                declared = ", ".join(sorted(spec.mcp)) or "none"
                return ("roles", key, "tools", i), (
                    f"MCP server {server!r} is not declared under `mcp:` (declared: {declared})")
        if role.program_aided is not None and (kind is None or not kind.program_aided):
            return ("roles", key, "program_aided"), (
                "only a generator, a debater or a refiner can be program-aided")
    kinds = [*known, "human"]
    roles = {*kinds, *spec.roles}  # memory.lessons_for / behaviors_for: kinds or our roles
    for name in ("lessons_for", "behaviors_for"):
        for entry in getattr(spec.memory, name) or []:
            if entry not in roles:
                return ("memory", name), (
                    f"unknown role {entry!r}; name a role kind ({', '.join(kinds)}) or a role "
                    "of this team")
    return None


def _located(problem: str) -> tuple[tuple[Any, ...], str]:
    """``"roles.x.plays: message"`` as ``(("roles", "x", "plays"), "message")``."""
    import re

    found = re.match(r"^([\w.]+): (.*)$", problem, re.DOTALL)
    if found is None:
        return (), problem
    loc = tuple(int(p) if p.isdigit() else p for p in found.group(1).split("."))
    return loc, found.group(2)


def build_graph(spec: TeamSpec) -> Any:
    """The team's uncompiled ``StateGraph``, with a person's pause at gated nodes."""
    graph = strategy_module(spec.strategy.name).build(spec)
    if any(role.interrupt for role in spec.roles.values()):
        from concilium.graphs.gates import add_gates

        graph = add_gates(graph, spec)
    return graph
