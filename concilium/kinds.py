"""Role kinds beyond the built-in ones: people, kinds a team file declares, teams as nodes.

Three ways a team file reaches past the registered role kinds
(:mod:`concilium.agents.roles.registry`), checked here for the loader
(:func:`concilium.graphs.check_kinds`):

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concilium.spec import TeamSpec

__all__ = ["MAX_TEAM_DEPTH", "check_kinds"]

MAX_TEAM_DEPTH = 4
"""Teams inside teams inside teams...: deeper than this is refused (and so is a cycle)."""
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check_kinds(spec: TeamSpec) -> str | None:
    """The first problem with the team's kinds, as ``"<field>: <message>"``, else ``None``."""
    from concilium.agents.roles import registry

    ROLE_KINDS = (*registry.names(), "human")
    PLAYABLE_KINDS = tuple(n for n, k in registry.kinds().items() if k.playable)

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
