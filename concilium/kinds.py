"""Role kinds beyond the built-in ones: people, kinds a team file declares, teams as nodes.

Three ways a team file reaches past the packaged role kinds, checked here so that
:mod:`concilium.teams` only calls one function:

- ``role: human`` — a person plays another kind's part (``plays: verifier``; default:
  the role's key). Its prompt is put to the person, their reply read by its parser.
- ``kinds:`` — a kind of the team's own: a prompt and a declared ``output`` (text,
  answer, verdict or critique), no Python. Custom graphs only.
- ``team: other.yaml`` — a custom graph's node that is a whole team, run as a
  LangGraph subgraph. The file is read when the parent is loaded and kept inline, so
  a resumed run rebuilds exactly the team it started with.

Example:
    >>> spec = load_spec("examples/teams/gvr_human.yaml")
    >>> spec.kind_of("verifier"), spec.is_human("verifier")
    ('verifier', True)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from concilium.errors import TeamFileError

if TYPE_CHECKING:
    from concilium.teams import TeamSpec

__all__ = ["MAX_TEAM_DEPTH", "check_kinds", "inline_teams"]

MAX_TEAM_DEPTH = 4
"""Teams inside teams inside teams...: deeper than this is refused (and so is a cycle)."""
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check_kinds(spec: TeamSpec) -> str | None:
    """The first problem with the team's kinds, as ``"<field>: <message>"``, else ``None``."""
    from concilium.teams import PLAYABLE_KINDS, ROLE_KINDS

    graph = spec.strategy.name == "graph"
    for name in spec.kinds:
        if name in ROLE_KINDS or name == "team":
            return f"kinds.{name}: {name!r} is a built-in kind; give yours another name"
        if not _NAME.match(name):
            return (
                f"kinds.{name}: a kind's name is lower case letters, digits and _, "
                "starting with a letter"
            )
        if not graph:
            return (
                f"kinds.{name}: kinds of a team's own are nodes of a custom graph (strategy: graph)"
            )
    known = [*ROLE_KINDS, *spec.kinds]
    for key, role in spec.roles.items():
        if role.team is not None:
            if not graph:
                return f"roles.{key}.team: a team as a node needs strategy: graph"
            if isinstance(role.team, str):
                return (
                    f"roles.{key}.team: the path {role.team!r} is read when the team is "
                    "loaded from a file (load_spec / load_team with a path)"
                )
            if role.role is not None or role.plays is not None:
                return f"roles.{key}: a team node has no `role` or `plays`"
            continue
        kind = role.role or key
        if kind not in known:
            return (
                f"roles.{key}: unknown role kind {kind!r}; valid kinds: "
                f"{', '.join(known)} (set `role:` when the key is an instance name)"
            )
        if kind == "human":
            plays = role.plays or key
            playable = [*PLAYABLE_KINDS, *spec.kinds]
            if plays not in playable:
                where = "plays" if role.plays else "role"
                return (
                    f"roles.{key}.{where}: a person plays a role kind: set `plays:` to "
                    f"one of {', '.join(playable)}"
                )
            if role.check is not None or role.program_aided is not None:
                return (
                    f"roles.{key}: a person is asked, not a tool: drop `check` and `program_aided`"
                )
        elif role.plays is not None:
            return f"roles.{key}.plays: only a `role: human` plays another kind"
        if kind in spec.kinds and not graph:
            return f"roles.{key}: kind {kind!r} of the team's own needs strategy: graph"
    return None


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
    from concilium.teams import _dotted, load_spec

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
