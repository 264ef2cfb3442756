"""Record real judge replies of the default model into ``tests/corpus/judge.jsonl``.

Run ``python tests/judge_corpus_record.py`` (about a minute on 2 cores), then read each
reply and set its ``label`` by hand: what the reply means (``pass``/``fail``/``A``/
``B``/``TIE``), or ``null`` when a person could not tell either.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from concilium.eval.datasets import load_dataset
from concilium.eval.judge import JUDGE_SYSTEM, pairwise_prompt, pointwise_prompt

DATA = Path(__file__).parent.parent / "examples" / "datasets" / "open_ended.jsonl"
OUT = Path(__file__).parent / "corpus" / "judge.jsonl"
WRONG = {"photosynthesis": "Photosynthesis is how animals digest food in their stomach.",
         "why-sky-blue": "The sky is blue because it reflects the colour of the oceans.",
         "list-vs-tuple": "There is no difference; both are the same type."}


async def main() -> None:
    from concilium.agents.llm import chat

    items = {item.id: item for item in load_dataset(DATA).items}
    cases = []
    for key in WRONG:
        item = items[key]
        cases.append(("point", key, pointwise_prompt(item, item.answers[0])))
        cases.append(("point", key, pointwise_prompt(item, WRONG[key])))
        cases.append(("pair", key, pairwise_prompt(item, item.answers[0], WRONG[key])))
        cases.append(("pair", key, pairwise_prompt(item, WRONG[key], item.answers[0])))
    with OUT.open("w", encoding="utf-8") as handle:
        for mode, key, prompt in cases:
            messages = [{"role": "system", "content": JUDGE_SYSTEM},
                        {"role": "user", "content": prompt}]
            result = await chat(messages, model="local/smollm2", max_tokens=256)
            handle.write(json.dumps({"mode": mode, "item": key, "prompt": prompt,
                                     "reply": result.text, "label": None}) + "\n")
            handle.flush()
            print(mode, key, repr(result.text[-160:]))


if __name__ == "__main__":
    asyncio.run(main())
