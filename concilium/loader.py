"""The team loader: a team file -> a :class:`~concilium.spec.TeamSpec` checked against its
strategy and the known role kinds.

:mod:`concilium.spec` validates a team's structure and knows nothing above it; the
checks that need a strategy module (its roles, its options) or the role-kind
registry live here, one layer up, and are handed to the spec's parser, as is the
reading of the team files a role's ``team:`` names. Everything that loads a team
file (``load_team``, the CLI, the service) loads it through here.

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

from concilium.errors import TeamFileError
from concilium.graphs import STRATEGIES, check_team, strategy_module
from concilium.kinds import MAX_TEAM_DEPTH
from concilium.spec import SCHEMA_URL, TeamSpec, _dotted, parse_dict, parse_file, parse_text

__all__ = ["inline_teams", "load_spec", "spec_from_dict", "spec_from_text", "team_json_schema"]


def load_spec(path: str | Path, *, _depth: int = 0, _seen: tuple[str, ...] = ()) -> TeamSpec:
    """Read and validate a team file; every problem raises :class:`TeamFileError`."""
    return parse_file(path, check=check_team, prepare=_inliner(_depth, _seen))


def spec_from_text(text: str, *, source: str = "<string>", _depth: int = 0,
                   _seen: tuple[str, ...] = ()) -> TeamSpec:
    """Validate team YAML given as text; ``source`` names it in errors."""
    return parse_text(text, source=source, check=check_team, prepare=_inliner(_depth, _seen))


def spec_from_dict(data: dict[str, Any], *, source: str = "<dict>", node: Any = None,
                   _depth: int = 0, _seen: tuple[str, ...] = ()) -> TeamSpec:
    """Validate a team given as a dict, then check it against its strategy.

    A role's ``team: <path>`` (a team as a custom graph's node) is read here, relative
    to ``source``'s directory, and kept inline (:func:`inline_teams`).
    """
    return parse_dict(data, source=source, node=node, check=check_team,
                      prepare=_inliner(_depth, _seen))


def _inliner(depth: int, seen: tuple[str, ...]) -> Any:
    return lambda data, source: inline_teams(data, source, depth=depth, seen=seen)


def inline_teams(
    data: dict[str, Any], source: str, *, depth: int = 0, seen: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``data`` with every role's ``team: <path>`` replaced by that team file's contents.

    Paths are relative to ``source``'s directory. Each file is validated as a team on
    its own (its strategy checked too), so an error names the inner file and line.

    Raises:
        TeamFileError: a file is missing or invalid, includes itself, or nests too deep.
    """
    roles = data.get("roles")
    if not isinstance(roles, dict) or not any(
        isinstance(r, dict) and isinstance(r.get("team"), str) for r in roles.values()
    ):
        return data
    base = Path(source).parent if source and not source.startswith("<") else Path.cwd()
    here = str(Path(source).resolve()) if source and not source.startswith("<") else source
    out = dict(roles)
    for key, role in roles.items():
        if not (isinstance(role, dict) and isinstance(role.get("team"), str)):
            continue
        path = (base / role["team"]).resolve()
        field = _dotted(("roles", key, "team"))
        if str(path) in (*seen, here):
            raise TeamFileError(source, f"team {role['team']!r} includes itself", field=field)
        if depth + 1 > MAX_TEAM_DEPTH:
            raise TeamFileError(source, f"teams nest deeper than {MAX_TEAM_DEPTH}", field=field)
        inner = load_spec(path, _depth=depth + 1, _seen=(*seen, here))
        out[key] = {**role, "team": inner.model_dump(mode="json", exclude_unset=True)}
    return {**data, "roles": out}


def team_json_schema() -> dict[str, Any]:
    """JSON Schema of team files, for editors (``# yaml-language-server: $schema=...``).

    It accepts what :func:`load_spec` accepts (the ``strategy: gvr`` shorthand, role
    keys that are kinds or instance names with ``role:``), lists the strategy names
    and role kinds, and gives each strategy's options in a branch of its own, so an
    editor completes ``samples:`` under ``self_consistency`` and flags it under ``gvr``.
    Checks that need the whole team (a strategy's required roles) stay in the loader.
    """
    from concilium.agents.roles import registry

    role_kinds = [*registry.names(), "human"]
    schema = TeamSpec.model_json_schema()
    if "$ref" in schema:  # recursive (a role's ``team:`` is a team): the root at the top
        defs_top = schema["$defs"]
        schema = {**defs_top.pop("TeamSpec"), "$defs": defs_top}
        team = defs_top["RoleSpec"]["properties"]["team"]
        team["anyOf"] = [{"$ref": "#"} if b.get("$ref") == "#/$defs/TeamSpec" else b
                         for b in team["anyOf"]]
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
    kind = {"type": "string", "anyOf": [
        {"enum": list(role_kinds)},
        {"pattern": "^[a-z][a-z0-9_]{0,63}$", "description": "a kind declared in `kinds:`"}]}
    role = defs["RoleSpec"]["properties"]["role"]
    role["anyOf"] = [kind, {"type": "null"}]
    schema["properties"]["roles"] = {
        "title": "Roles",
        "description": "Role instances by key: a role kind, or any name with `role: <kind>`.",
        "type": "object",
        "properties": {k: {"$ref": "#/$defs/RoleSpec"} for k in role_kinds},
        "additionalProperties": {
            "allOf": [{"$ref": "#/$defs/RoleSpec"}],
            "anyOf": [{"required": ["role"], "properties": {"role": kind}},
                      {"required": ["team"]}],
        },
    }
    # A team without `kinds:` has only the built-in kinds: say so, so a typo is flagged.
    strict = {"properties": {"role": {"anyOf": [{"enum": list(role_kinds)},
                                                {"type": "null"}]}}}
    schema["if"] = {"required": ["kinds"]}
    schema["else"] = {"properties": {"roles": {
        "properties": dict.fromkeys(role_kinds, strict), "additionalProperties": strict}}}
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
