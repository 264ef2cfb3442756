"""Evaluation: compare teams on a dataset — accuracy, tokens, cost, latency, flips.

- ``datasets``: JSONL / JSON files (GSM8K and CIAR as they come) and ``arith:N[:seed]``;
- ``graders``: one per answer format (number, choice, text, code);
- ``runner``: concurrent, resumable runs streamed to ``items.jsonl`` and ``summary.json``;
  items that failed for a transient reason are re-queued, and a per-model circuit
  breaker (``BreakerPolicy``) pauses a model that keeps failing;
- ``stats``: Wilson intervals, paired McNemar tests, per-team summaries;
- ``report``: Markdown / HTML with plots.

Example:
    >>> from concilium.eval import Evaluation, load_dataset
    >>> evaluation = Evaluation([team_a, team_b], load_dataset("arith:50"), Path("out"))
    >>> asyncio.run(evaluation.run()); evaluation.write_summary()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from concilium._lazy import lazy_getattr

if TYPE_CHECKING:
    from concilium.agents.breaker import BreakerPolicy
    from concilium.eval.datasets import Dataset, Item, load_dataset
    from concilium.eval.graders import Grade, grader_for
    from concilium.eval.report import write_report
    from concilium.eval.runner import EvalOptions, Evaluation

__all__ = ["BreakerPolicy", "Dataset", "EvalOptions", "Evaluation", "Grade", "Item",
           "grader_for", "load_dataset", "write_report"]

_LAZY = {
    "BreakerPolicy": "concilium.agents.breaker",
    "Dataset": "concilium.eval.datasets",
    "Item": "concilium.eval.datasets",
    "load_dataset": "concilium.eval.datasets",
    "Grade": "concilium.eval.graders",
    "grader_for": "concilium.eval.graders",
    "write_report": "concilium.eval.report",
    "EvalOptions": "concilium.eval.runner",
    "Evaluation": "concilium.eval.runner",
}


__getattr__ = lazy_getattr("concilium.eval", _LAZY)
