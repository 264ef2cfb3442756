"""Ledger -> training data: SFT, DPO and MALT-style trajectories from recorded runs.

The ledger already holds every generator, verifier, critic and refiner call with its
prompt, output and outcome. These modules turn it into the data the research trains on:

- ``reader.py``: runs and steps from the ledger, filtered, secrets redacted, held-out
  tasks left out (what every format shares);
- ``sft.py``: chat-format examples (``messages``) of each role's calls from right runs;
- ``dpo.py``: ``prompt / chosen / rejected`` pairs from wrong->right revisions and from
  right vs wrong samples of one prompt (self-consistency, debate);
- ``malt.py``: per task, the tree of generations -> verdicts -> refinements with
  outcome-based credit (MALT): a node's value is the share of its leaves that end right.

Example:
    >>> from concilium.export import Filters, export
    >>> rows = export("dpo", Filters(team="gvr-calculator"))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from concilium.errors import ConfigError
from concilium.export import dpo, malt, sft
from concilium.export.reader import FORMATS, Filters, HeldOut, RunData, read_runs

__all__ = ["FORMATS", "Filters", "HeldOut", "RunData", "builder", "export", "read_runs"]

def export(fmt: str, filters: Filters | None = None, *, db: Any = None,
           held_out: HeldOut | None = None) -> list[dict[str, Any]]:
    """Rows of format ``fmt`` (``sft``, ``dpo`` or ``malt``) from the ledger at ``db``."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if db is None:
        from concilium.memory.store import Memory

        db = Memory.open(redis_url=False).db
    runs, _ = read_runs(db, filters, held_out)
    return builder(fmt)(runs)


def builder(fmt: str) -> Callable[[list[RunData]], list[dict[str, Any]]]:
    """The function that turns runs into rows of format ``fmt``."""
    return {"sft": sft.build, "dpo": dpo.build, "malt": malt.build}[fmt]

