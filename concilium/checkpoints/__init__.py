"""Old home of the checkpoint savers, kept so ``from concilium.checkpoints import ...`` works.

They are in :mod:`concilium.run.checkpoints` now: checkpoints are part of running a team.
(A package, not a module, so that git follows the old file's history, and the
changes other branches make to it, to its new home.)
"""

from __future__ import annotations

from concilium.run.checkpoints import (
    RedactingSerializer,
    RunBusy,
    checkpoint_path,
    claim_run,
    open_checkpointer,
    thread_config,
)

__all__ = [
    "RedactingSerializer",
    "RunBusy",
    "checkpoint_path",
    "claim_run",
    "open_checkpointer",
    "thread_config",
]
