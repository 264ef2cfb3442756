"""``--format dpo``: ``prompt / chosen / rejected`` pairs (TRL's conversational format).

Two sources, both checked against the run's reference, never a model's opinion:

- ``flip``: a revision that turned a wrong answer right (a refiner in gvr or
  self-refine, a debater changing its mind): rejected = the answer before, chosen = the
  answer after, prompt = the prompt the wrong answer replied to (SCoRe, Agent-R);
- ``samples``: calls with the very same prompt (self-consistency samples, debaters of
  one round) where one answered right and another wrong: every distinct right reply
  against every distinct wrong one.
"""

from __future__ import annotations

from typing import Any

from concilium.export.reader import RunData, dedup, fingerprint, step_correct

__all__ = ["build"]

REVISERS = ("generator", "refiner")
"""In a single chain (gvr, self-refine) a refiner revises the latest of these."""


def _pair(prompt: list[dict[str, Any]], chosen: str, rejected: str, **extra: Any,
          ) -> dict[str, Any]:
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], **extra}


def _before(steps: list[dict[str, Any]], index: int) -> dict[str, Any] | None:
    """The call whose answer step ``index`` revised: same node earlier, else the latest draft."""
    after = steps[index]
    earlier = [s for s in steps[:index] if s["kind"] == "llm" and s["answer"] is not None]
    same_node = [s for s in earlier if s["node"] == after["node"]]
    if same_node:
        return same_node[-1]
    drafts = [s for s in earlier if s["role"] in REVISERS]
    return drafts[-1] if drafts else None


def build(runs: list[RunData]) -> list[dict[str, Any]]:
    """Every wrong->right revision and every right/wrong sample pair of one prompt."""
    rows = []
    for run in runs:
        if run.reference is None:
            continue
        meta = {"team": run.team, "strategy": run.strategy, "run_id": run.id}
        for index, step in enumerate(run.steps):
            if step["flip"] != "wrong->right":
                continue
            before = _before(run.steps, index)
            if before is not None and before["messages"]:
                rows.append(_pair(before["messages"], step["output"], before["output"],
                                  role=step["role"], source="flip", **meta))
        groups: dict[str, list[dict[str, Any]]] = {}
        for step in run.steps:
            if step["kind"] == "llm" and step["messages"] and step["answer"] is not None:
                groups.setdefault(fingerprint(step["messages"]), []).append(step)
        for group in groups.values():
            right = list(dict.fromkeys(s["output"] for s in group if step_correct(run, s)))
            wrong = list(dict.fromkeys(s["output"] for s in group
                                       if step_correct(run, s) is False))
            for chosen in right:
                for rejected in wrong:
                    rows.append(_pair(group[0]["messages"], chosen, rejected,
                                      role=group[0]["role"], source="samples", **meta))
    return dedup(rows, lambda r: fingerprint(r["prompt"], r["chosen"], r["rejected"]))
