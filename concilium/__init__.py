"""concilium: teams of LLM agents as LangGraph state machines, configured in YAML.

Data walks one way, and so do the imports (``tests/test_layers.py`` checks it)::

    spec.py, loader.py   a team file -> TeamSpec, checked against its strategy
    run/                 the one place a team is run (execute, its memory, checkpoints)
    graphs/              one module per strategy: control flow only
    agents/roles/        one module per role kind: a prompt, a call, a parser
    agents/llm.py        the one door to models (litellm behind it)
    memory/              SQL truth + Redis hot layer behind one backend protocol
    records.py           Step, Usage, RunResult: plain data, imports nothing

``team.py`` is the facade (:func:`load_team`, :class:`Team`); ``cli/``, ``serve/``,
``scale/``, ``eval/`` and ``export/`` sit on top and call it.

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
    from concilium.records import RunResult, Usage
    from concilium.spec import TeamSpec
    from concilium.team import RunFailed, RunNotResumable, Team, load_team, resume_run

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
    "RunResult": "concilium.records",
    "Team": "concilium.team",
    "Usage": "concilium.records",
    "load_team": "concilium.team",
    "TeamSpec": "concilium.spec",
}


__getattr__ = lazy_getattr("concilium", _LAZY)
