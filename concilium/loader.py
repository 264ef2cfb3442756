"""The team loader: a team file -> a :class:`~concilium.spec.TeamSpec` checked against its
strategy and the known role kinds.

:mod:`concilium.spec` validates a team's structure and knows nothing above it; the
checks that need a strategy module (its roles, its options) or the role-kind
registry live here, one layer up, and are handed to the spec's parser. Everything
that loads a team file (``load_team``, the CLI, the service) loads it through here.

Example:
    >>> spec = load_spec("examples/teams/gvr.yaml")
    >>> spec.strategy.name
    'gvr'
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from concilium.graphs import STRATEGIES, check_team, strategy_module
from concilium.spec import SCHEMA_URL, TeamSpec, parse_dict, parse_file, parse_text

__all__ = ["load_spec", "spec_from_dict", "spec_from_text", "team_json_schema"]


def load_spec(path: str | Path) -> TeamSpec:
    """Read and validate a team file; every problem raises :class:`TeamFileError`."""
    return parse_file(path, check=check_team)


def spec_from_text(text: str, *, source: str = "<string>") -> TeamSpec:
    """Validate team YAML given as text; ``source`` names it in errors."""
    return parse_text(text, source=source, check=check_team)


def spec_from_dict(data: dict[str, Any], *, source: str = "<dict>", node: Any = None) -> TeamSpec:
    """Validate a team given as a dict, then check it against its strategy."""
    return parse_dict(data, source=source, node=node, check=check_team)


def team_json_schema() -> dict[str, Any]:
    """JSON Schema of team files, for editors (``# yaml-language-server: $schema=...``).

    It accepts what :func:`load_spec` accepts (the ``strategy: gvr`` shorthand, role
    keys that are kinds or instance names with ``role:``), lists the strategy names
    and role kinds, and gives each strategy's options in a branch of its own, so an
    editor completes ``samples:`` under ``self_consistency`` and flags it under ``gvr``.
    Checks that need the whole team (a strategy's required roles) stay in the loader.
    """
    schema = TeamSpec.model_json_schema()
    defs: dict[str, Any] = schema["$defs"]
    branches: list[dict[str, Any]] = []
    for name in STRATEGIES:
        options = strategy_module(name).Options
        sub = options.model_json_schema(ref_template="#/$defs/{model}")
        for key, value in sub.pop("$defs", {}).items():
            if defs.setdefault(key, value) != value:
                raise RuntimeError(f"two schema definitions named {key!r}")  # a bug, not input
        for model in _models_in(options):
            _one_or_many(model, sub if model is options else defs[model.__name__])
        branches.append({
            "type": "object",
            "title": name,
            "description": " ".join((options.__doc__ or name).split()),
            "properties": {"name": {"const": name}, **sub.get("properties", {})},
            "required": ["name", *sub.get("required", [])],
            "additionalProperties": False,
        })
    defs.pop("StrategySpec", None)
    schema["properties"]["strategy"] = {
        "title": "Strategy",
        "description": "A strategy name, or {name: <strategy>, <its options>}.",
        "anyOf": [{"type": "string", "enum": list(STRATEGIES)}, *branches],
    }
    from concilium.agents.roles import registry

    kinds = registry.names()
    kind = {"type": "string", "enum": list(kinds)}
    role = defs["RoleSpec"]["properties"]["role"]
    role["anyOf"] = [kind, {"type": "null"}]
    schema["properties"]["roles"] = {
        "title": "Roles",
        "description": "Role instances by key: a role kind, or any name with `role: <kind>`.",
        "type": "object",
        "properties": {k: {"$ref": "#/$defs/RoleSpec"} for k in kinds},
        "additionalProperties": {
            "allOf": [{"$ref": "#/$defs/RoleSpec"}],
            "required": ["role"],
            "properties": {"role": kind},
        },
    }
    schema["$id"] = SCHEMA_URL
    schema["title"] = "concilium team"
    return schema


def _models_in(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and the models its fields hold (e.g. a graph's ``Edge``), depth first."""
    found = [model]
    for field in model.model_fields.values():
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in found:
                found += [m for m in _models_in(arg) if m not in found]
    return found


def _one_or_many(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """A list field with a ``_one_or_many`` before-validator takes one item too: say so."""
    for decorator in model.__pydantic_decorators__.field_validators.values():
        if decorator.cls_var_name != "_one_or_many":
            continue
        for name in decorator.info.fields:
            key = model.model_fields[name].alias or name
            prop = schema["properties"][key]
            array = {k: prop.pop(k) for k in ("type", "items", "minItems") if k in prop}
            prop["anyOf"] = [array["items"], array]
