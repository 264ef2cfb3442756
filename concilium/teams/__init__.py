"""Old home of team specs and their loader, kept so ``from concilium.teams import ...`` works.

The models are in :mod:`concilium.spec`, the loading (with the strategy checks) in
:mod:`concilium.loader`; new code imports from there.
(A package, not a module, so that git follows the old file's history, and the
changes other branches make to it, to its new home.)
"""

from __future__ import annotations

from concilium.agents.roles import registry
from concilium.loader import (
    inline_teams,
    load_spec,
    spec_from_dict,
    spec_from_text,
    team_json_schema,
)
from concilium.spec import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    OUTPUTS,
    SCHEMA_URL,
    AnswerSpec,
    FallbackSpec,
    KindSpec,
    LimitsSpec,
    MemorySpec,
    PromptSpec,
    RetrySpec,
    RoleSpec,
    StrategySpec,
    TeamSpec,
    locate,
)

ROLE_KINDS: tuple[str, ...] = (*registry.names(), "human")
"""The built-in role kinds (the registry, :mod:`concilium.agents.roles.registry`, has them
all, added ones included)."""
PROGRAM_AIDED_KINDS: tuple[str, ...] = tuple(
    name for name, kind in registry.kinds().items() if kind.program_aided
)
PLAYABLE_KINDS: tuple[str, ...] = tuple(
    name for name, kind in registry.kinds().items() if kind.playable
)

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "OUTPUTS",
    "PLAYABLE_KINDS",
    "PROGRAM_AIDED_KINDS",
    "ROLE_KINDS",
    "SCHEMA_URL",
    "AnswerSpec",
    "FallbackSpec",
    "KindSpec",
    "LimitsSpec",
    "MemorySpec",
    "PromptSpec",
    "RetrySpec",
    "RoleSpec",
    "StrategySpec",
    "TeamSpec",
    "inline_teams",
    "load_spec",
    "locate",
    "spec_from_dict",
    "spec_from_text",
    "team_json_schema",
]
