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

from concilium.export.reader import Filters, HeldOut, RunData, export, read_runs

__all__ = ["Filters", "HeldOut", "RunData", "export", "read_runs"]
