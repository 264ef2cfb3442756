"""Strategies: one module each, each builds a LangGraph ``StateGraph``.

A strategy module provides:

- ``ROLES``: role keys it uses, mapped to ``True`` when required, and/or
  ``check(spec) -> (loc, message) | None`` for rules a fixed role set cannot state;
- ``Options``: a pydantic model (extra keys forbidden) for ``strategy:`` options;
- ``build(team) -> StateGraph``.

Modules are imported on first use so ``concilium --help`` stays fast.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from concilium.teams import TeamSpec

__all__ = ["STRATEGIES", "build_graph", "check_team", "strategy_module"]

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
    """The first problem of a structurally valid team against its strategy, as (loc, message)."""
    from concilium.agents.prompts import check_prompt

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
            problem = check_prompt(spec.kind_of(key), role.prompt, spec)
            if problem is not None:
                return ("roles", key, "prompt", problem[0]), problem[1]
    for name, kind in spec.kinds.items():
        problem = check_prompt(name, kind.prompt, spec)
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


def build_graph(spec: TeamSpec) -> Any:
    """The team's uncompiled ``StateGraph``, with a person's pause at gated nodes."""
    graph = strategy_module(spec.strategy.name).build(spec)
    if any(role.interrupt for role in spec.roles.values()):
        from concilium.graphs.gates import add_gates

        graph = add_gates(graph, spec)
    return graph
