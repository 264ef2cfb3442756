"""Record the critic's and verifier's raw replies from the default local model.

The parser tests (tests/test_parsers_corpus.py) read what this writes: real
replies of ``local/smollm2`` to the packaged prompts (``packaged``), to the
prompts earlier releases shipped (``v0``, still found in team files that copied
them) and to a variant that was tried and dropped because the model followed it
less (``variant``: it ends by asking for the markers once more), on arithmetic
tasks with right and wrong candidate solutions. Each line gets an ``expected``
parse, labelled by hand after recording (``null`` until then: ``--keep`` keeps
the labels of replies that did not change).

Run (52 calls, ~3 minutes on 2 cores):
    python tests/corpus/record.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from concilium.agents.answers import extract
from concilium.agents.llm import chat
from concilium.agents.prompts import render
from concilium.teams import PromptSpec

HERE = Path(__file__).resolve().parent
MODEL = "local/smollm2"

# (task, right solution, wrong solution)
CASES: list[tuple[str, str, str]] = [
    ("What is 17 * 24 + 3?",
     "17 * 24 = 408. 408 + 3 = 411.\nAnswer: 411",
     "17 * 24 = 398. 398 + 3 = 401.\nAnswer: 401"),
    ("Tom has 3 bags of 12 apples and eats 5 apples. How many apples are left?",
     "3 * 12 = 36. 36 - 5 = 31.\nAnswer: 31",
     "3 * 12 = 36. 36 + 5 = 41.\nAnswer: 41"),
    ("A book costs $8 and a pen costs $3. How much do 2 books and 4 pens cost?",
     "2 * 8 = 16. 4 * 3 = 12. 16 + 12 = 28.\nAnswer: 28",
     "2 * 8 = 16. 4 * 3 = 7. 16 + 7 = 23.\nAnswer: 23"),
    ("What is 125 - 48?",
     "125 - 48 = 77.\nAnswer: 77",
     "125 - 48 = 87.\nAnswer: 87"),
    ("A train travels 60 km per hour for 3 hours. How far does it go?",
     "60 * 3 = 180.\nAnswer: 180",
     "60 + 3 = 63.\nAnswer: 63"),
]

V0 = {
    "critic": PromptSpec(
        system='You review solutions and point out concrete mistakes. If there are none, reply '
               'exactly "NO ISSUES". Otherwise write each mistake on its own line starting '
               'with "- ".',
        user="Task: {{ task }}\n\nSolution:\n{{ answer }}"),
    "verifier": PromptSpec(
        system='You check solutions. Reply with "VERDICT: correct" or "VERDICT: incorrect", '
               'then one line that says why.',
        user="Task: {{ task }}\n\nProposed solution:\n{{ answer }}\n\n"
             "Is the final answer {{ final }} correct?"),
}

VARIANT = {
    "critic": PromptSpec(user=(
        'Task: {{ task }}\n\nSolution:\n{{ answer }}\n\nIts final answer is {{ final }}. '
        'Reply "NO ISSUES", or one line "ISSUE: <the mistake>" per mistake.')),
    "verifier": PromptSpec(user=(
        "Task: {{ task }}\n\nProposed solution:\n{{ answer }}\n\n"
        'Is the final answer {{ final }} correct? Start your reply with "VERDICT:".')),
}
OVERRIDES = {"packaged": {}, "v0": V0, "variant": VARIANT}


async def record(role: str, prompt: str, cases: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    rows = []
    for task, right, wrong in cases:
        for answer, correct in ((right, True), (wrong, False)):
            messages = render(role, OVERRIDES[prompt].get(role), task=task,
                              answer=answer, final=extract(answer) or "(none given)")
            result = await chat(messages, model=MODEL, temperature=0.0, max_tokens=256, seed=0)
            rows.append({"role": role, "prompt": prompt, "task": task, "answer": answer,
                         "candidate_correct": correct, "output": result.text,
                         "expected": None})
            print(role, prompt, correct, repr(result.text[:120]), flush=True)
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="keep labels of unchanged replies")
    parser.add_argument("--packaged-only", action="store_true",
                        help="record the packaged prompts only (keep the v0 lines)")
    args = parser.parse_args()
    for role in ("verifier", "critic"):
        path = HERE / f"{role}.jsonl"
        old: dict[tuple[str, ...], Any] = {}
        if args.keep and path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                old[(row["prompt"], row["task"], row["answer"], row["output"])] = row["expected"]
        rows = await record(role, "packaged", CASES)
        if args.packaged_only and path.exists():
            rows += [r for r in map(json.loads, path.read_text().splitlines())
                     if r["prompt"] != "packaged"]
        else:
            rows += [*await record(role, "v0", CASES[:3]),
                     *await record(role, "variant", CASES)]
        for row in rows:
            row["expected"] = old.get((row["prompt"], row["task"], row["answer"], row["output"]))
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


if __name__ == "__main__":
    asyncio.run(main())
