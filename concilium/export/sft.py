"""``--format sft``: chat-format examples (OpenAI fine-tuning / TRL ``messages``).

Each model call of a run that ended right becomes one example: its prompt messages and
its reply as the assistant turn (a turn that called tools as the model sent it: OpenAI's
``tool_calls``, or the prompt protocol's markers; the tool results are in the next
call's messages), with the role that made it, so one file trains
generator, verifier and refiner apart (``--out DIR`` writes one file per role). A call
whose own answer is known to be wrong is left out even in a run that ended right: a
generator's wrong first draft that the refiner fixed is not something to imitate.
"""

from __future__ import annotations

from typing import Any

from concilium.export.reader import RunData, dedup, fingerprint, step_correct

__all__ = ["build"]


def build(runs: list[RunData]) -> list[dict[str, Any]]:
    """One ``{"messages": [...], "role": ...}`` row per model call of each right run."""
    rows = []
    for run in runs:
        if run.correct is not True:
            continue
        for step in run.steps:
            if step["kind"] != "llm" or not step["messages"] or step_correct(run, step) is False:
                continue
            rows.append({
                "messages": [*step["messages"], _reply(step)],
                "role": step["role"], "model": step["model"], "team": run.team,
                "strategy": run.strategy, "run_id": run.id, "seq": step["seq"],
            })
    return dedup(rows, lambda row: fingerprint(row["messages"]))


def _reply(step: dict[str, Any]) -> dict[str, Any]:
    """The assistant turn: a tool-calling turn as sent (see ``agents/tool_loop.py``)."""
    sent = step["parsed"].get("assistant")
    if isinstance(sent, dict):
        return dict(sent)
    return {"role": "assistant", "content": step["output"]}
