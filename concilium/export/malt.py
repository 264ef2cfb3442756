"""``--format malt``: per task, the tree of calls with outcome-based credit (MALT).

All runs of one task are merged into a tree: the root is the task, a path is what one
line of work did (a gvr run's generator -> verifier -> refiner -> verifier ...; one
self-consistency sample; one debater's answers round after round), and identical
calls (same role, prompt and reply under the same parent) share a node, so a draft that
two runs both produced is one node with two leaves below it. Each leaf ends right or
wrong against the reference (a chain by the run's final outcome, a sample or debater by
its own last answer). Credit flows up: a node's ``value`` is the share of the leaves
below it that end right, and it is ``good`` when at least one path through it ends
right. Every node carries its prompt and reply, ready for per-role SFT or DPO (MALT
trains generator, verifier and refiner from exactly these labels).
"""

from __future__ import annotations

from typing import Any

from concilium.export.reader import RunData, fingerprint, step_correct

__all__ = ["build", "nodes", "paths"]

PER_SAMPLE = {"self_consistency": ("generator",), "debate": ("debater",)}
"""Strategies whose calls are parallel lines of work: role(s) whose calls form the paths."""


def paths(run: RunData) -> list[tuple[list[dict[str, Any]], bool]]:
    """The lines of work of ``run``, each with whether it ended right (unknown: none)."""
    roles = PER_SAMPLE.get(run.strategy)
    if roles is None:
        chain = [s for s in run.steps if s["role"] != "vote"]
        return [(chain, bool(run.correct))] if chain and run.correct is not None else []
    lines: dict[str, list[dict[str, Any]]] = {}
    for step in run.steps:
        if step["role"] in roles and step["kind"] == "llm":
            key = step["node"] if run.strategy == "debate" else f"{step['node']}#{step['seq']}"
            lines.setdefault(key, []).append(step)
    found = []
    for line in lines.values():
        outcome = step_correct(run, line[-1])
        if outcome is not None:
            found.append((line, outcome))
    return found


def _node(step: dict[str, Any], parent: str | None, node_id: str) -> dict[str, Any]:
    return {"id": node_id, "parent": parent, "role": step["role"], "kind": step["kind"],
            "model": step["model"], "round": step["round"], "messages": step["messages"],
            "output": step["output"], "answer": step["answer"], "leaves": 0, "right": 0}


def build(runs: list[RunData]) -> list[dict[str, Any]]:
    """One tree per task (runs grouped by task text), nodes labelled with their credit."""
    tasks: dict[str, dict[str, Any]] = {}
    for run in runs:
        found = paths(run)
        if not found:
            continue
        tree = tasks.setdefault(" ".join(run.task.split()), {
            "task": run.task, "reference": run.reference, "runs": [], "leaves": 0, "right": 0,
            "nodes": {}})
        tree["runs"].append(run.id)
        for line, ended_right in found:
            tree["leaves"] += 1
            tree["right"] += ended_right
            parent: str | None = None
            for step in line:
                node_id = fingerprint(parent, step["role"], step["kind"], step["messages"],
                                      step["output"])
                node = tree["nodes"].setdefault(node_id, _node(step, parent, node_id))
                node["leaves"] += 1
                node["right"] += ended_right
                parent = node_id
    trees = []
    for tree in tasks.values():
        for node in tree["nodes"].values():
            node["value"] = node["right"] / node["leaves"]
            node["label"] = "good" if node["right"] else "bad"
        tree["value"] = tree["right"] / tree["leaves"]
        tree["nodes"] = list(tree["nodes"].values())
        trees.append(tree)
    return trees


def nodes(trees: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every node of every tree as its own row (with its task), for per-role files."""
    return [{**node, "task": tree["task"], "reference": tree["reference"]}
            for tree in trees for node in tree["nodes"]]
