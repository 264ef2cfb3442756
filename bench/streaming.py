"""Streaming on the default local model: time to first token vs the full reply.

For each prompt, the same call is made unstreamed and streamed (taking turns, after a
warm-up that loads the model and puts each prompt in llama.cpp's cache, so both see the
same cache state), and we report per call:

- time to first token (``ChatResult.first_token_ms``: from the call to its first text);
- the full reply's latency, streamed and unstreamed (what streaming itself costs: the
  token tap is a logits processor that returns the logits it is given);
- whether the streamed text and usage equal the unstreamed ones (they must).

Usage: ``python bench/streaming.py [--repeats 2] [--max-tokens 96]``. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

PROMPTS = [
    "What is 17 * 24 + 3? Think step by step.",
    "Name three colours and say one thing about each.",
    "Explain in two sentences why the sky is blue.",
    "Write a short poem about the sea.",
]


async def main(repeats: int, max_tokens: int, model: str) -> None:
    from functools import partial

    from concilium.agents.llm import Delta, RetryPolicy
    from concilium.agents.llm import chat as door

    # one try, a long limit: on a busy machine a timed-out try keeps the model's one
    # thread busy, and the retry would queue behind it
    chat = partial(door, retry=RetryPolicy(attempts=1, timeout_s=900.0))

    def ask(prompt: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": prompt}]

    rows = []
    same = True
    for _ in range(repeats):
        for prompt in PROMPTS:
            # llama.cpp keeps the last prompt evaluated and reuses it, which can change a
            # greedy reply: this call puts the prompt there, so both compared calls reuse it
            await chat(ask(prompt), model=model, max_tokens=1)
            whole = await chat(ask(prompt), model=model, max_tokens=max_tokens)
            deltas: list[Delta] = []
            streamed = await chat(
                ask(prompt), model=model, max_tokens=max_tokens, on_delta=deltas.append
            )
            pieces = [d.text for d in deltas]
            same = (
                same
                and streamed.text == whole.text == "".join(pieces)
                and (streamed.prompt_tokens, streamed.completion_tokens)
                == (whole.prompt_tokens, whole.completion_tokens)
            )
            rows.append(
                (
                    streamed.first_token_ms or 0.0,
                    streamed.latency_ms,
                    whole.latency_ms,
                    streamed.completion_tokens,
                )
            )
    print(f"{'ttft ms':>8} {'streamed ms':>12} {'whole ms':>9} {'tokens':>7} {'ttft/full':>9}")
    for ttft, full, whole, tokens in rows:
        print(f"{ttft:>8.0f} {full:>12.0f} {whole:>9.0f} {tokens:>7} {ttft / full:>9.1%}")
    ttft = statistics.median(r[0] for r in rows)
    full = statistics.median(r[1] for r in rows)
    whole = statistics.median(r[2] for r in rows)
    print(
        f"median: first token after {ttft:.0f} ms, full reply after {full:.0f} ms "
        f"({ttft / full:.1%} of it); unstreamed {whole:.0f} ms "
        f"(streaming costs {full / whole - 1:+.1%}); streamed == unstreamed: {same}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--model", default="local/smollm2")
    args = parser.parse_args()
    asyncio.run(main(args.repeats, args.max_tokens, args.model))
