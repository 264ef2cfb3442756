"""concilium: teams of LLM agents as LangGraph state machines, configured in YAML.

Example:
    >>> from concilium import load_team
    >>> team = load_team("examples/teams/gvr.yaml")
    >>> result = team.run("What is 17 * 24 + 3?")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from concilium._lazy import lazy_getattr

# litellm reads this at import: without it, it downloads a price list (and stalls offline).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

if TYPE_CHECKING:
    from concilium.errors import ConciliumError, TeamFileError
    from concilium.spec import TeamSpec
    from concilium.team import (
        RunFailed,
        RunNotResumable,
        RunResult,
        Team,
        Usage,
        load_team,
        resume_run,
    )

__all__ = [
    "ConciliumError",
    "RunFailed",
    "RunNotResumable",
    "RunResult",
    "Team",
    "TeamFileError",
    "TeamSpec",
    "Usage",
    "load_team",
    "resume_run",
]
__version__ = "0.1.0"

_LAZY = {
    "ConciliumError": "concilium.errors",
    "TeamFileError": "concilium.errors",
    "RunFailed": "concilium.team",
    "RunNotResumable": "concilium.team",
    "resume_run": "concilium.team",
    "RunResult": "concilium.team",
    "Team": "concilium.team",
    "Usage": "concilium.team",
    "load_team": "concilium.team",
    "TeamSpec": "concilium.spec",
}


__getattr__ = lazy_getattr("concilium", _LAZY)
