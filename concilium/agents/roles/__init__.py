"""Roles: a prompt, one model call (or tool check), and a parser into a typed result.

Roles never decide control flow; graphs do.
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
