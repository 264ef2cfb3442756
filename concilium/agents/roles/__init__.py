"""Roles: a prompt, one model call (or tool check), and a parser into a typed result.

Roles never decide control flow; graphs do. One module per role kind, each ending in
``KIND = RoleKind(...)`` (:mod:`~concilium.agents.roles.kind`): its name, its prompt's
variables, its result type and what its node does in a custom graph.

A new role kind: a module here declaring ``KIND``, its prompt file in
``concilium/prompts/<kind>.yaml``, and its module listed in
:mod:`~concilium.agents.roles.registry` (or ``registry.register(KIND)`` from your own
code). Team validation, prompt checks, the schema and custom graphs then know it.
``results.py`` holds the typed results; ``reading.py``, ``checks.py`` and
``program.py`` are helpers the roles share.
"""

from concilium.agents.roles.results import (
    Answer,
    Critique,
    Judgement,
    ModeratorDecision,
    Reflection,
    Verdict,
)

__all__ = ["Answer", "Critique", "Judgement", "ModeratorDecision", "Reflection", "Verdict"]
