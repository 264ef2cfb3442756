"""How often the default local model calls the calculator correctly (issue #14).

A ``single`` team whose generator has ``tools: [calculator]`` runs on the generated
``arith:N:seed`` problems with the default model (``local/smollm2``, offered the tool
through the ``<tool_call>`` prompt protocol). For each problem it records whether the
model

- **called** a tool at all;
- made a **well-formed** call (readable, a known tool, arguments that parse, no tool error);
- made a **correct** call: the calculator's result equals the problem's answer (it
  passed the right expression);
- ended with the right **answer**.

No target: the figure is reported, not asserted (the model has 135M parameters).
Stops starting problems after ``--budget-s`` seconds (the machine is shared).

Usage: ``python bench/tool_calls.py [--n 10] [--seed 0] [--budget-s 540] [--model M]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from concilium import load_team
from concilium.eval.datasets import load_dataset


def team_spec(model: str | None, max_tokens: int) -> dict[str, Any]:
    return {
        "name": "bench-tool-calls",
        "strategy": "single",
        "answer": {"format": "number"},
        "limits": {"max_tool_calls": 3, "max_llm_calls": 4, "timeout_s": 600},
        "retry": {"attempts": 1, "timeout_s": 600},
        **({"model": model} if model else {}),
        "roles": {"generator": {"tools": ["calculator"], "max_tokens": max_tokens}},
    }


def score(steps: list[dict[str, Any]], reference: str) -> dict[str, bool]:
    calls = [s for s in steps if s.get("kind") == "tool" and "call_id" in (s.get("parsed") or {})]
    ok = [s for s in calls if s["parsed"].get("ok")]
    return {
        "called": bool(calls),
        "well_formed": bool(ok),
        "correct_call": any(s["output"].strip() == reference for s in ok),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=540.0)
    parser.add_argument("--model", default=None, help="default: CONCILIUM_MODEL or local/smollm2")
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()

    team = load_team(team_spec(args.model, args.max_tokens))
    items = load_dataset(f"arith:{args.n}:{args.seed}").items
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for item in items:
        if time.perf_counter() - start > args.budget_s:
            break
        began = time.perf_counter()
        result = await team.arun(item.question, reference=item.answers[0], memory=False)
        row = {
            "id": item.id,
            "question": item.question,
            **score(result.steps, item.answers[0]),
            "answer_right": bool(result.correct),
            "status": result.status,
            "s": round(time.perf_counter() - began, 1),
            "first_reply": next((s["output"] for s in result.steps if s["kind"] == "llm"), "")[
                :120
            ],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    n = len(rows)

    def share(key: str) -> str:
        hits = sum(1 for r in rows if r[key])
        return f"{hits}/{n} = {hits / n:.0%}" if n else "n/a"

    summary = {
        "model": team.spec.model or "default (CONCILIUM_MODEL or local/smollm2)",
        "dataset": f"arith:{args.n}:{args.seed}",
        "problems": n,
        "called": share("called"),
        "well_formed": share("well_formed"),
        "correct_call": share("correct_call"),
        "answer_right": share("answer_right"),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
