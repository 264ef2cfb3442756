"""Tokens per second of the default local model, alone and with overlapping calls.

Target (issue #17): overlapping calls keep >= 0.8x the tokens/s of one sequential call.
Each way of calling runs in a fresh process, because OpenMP thread teams left behind by
one way would slow the next:

- ``sequential``: one 64-token call at a time through ``agents.llm.chat``;
- ``to_thread``: N overlapping calls each in ``asyncio.to_thread`` behind a lock
  (what the provider did before: every pool thread got its own OpenMP team);
- ``provider``: the same N overlapping calls through ``agents.llm.chat`` (the provider
  runs them on the model's one thread).

Usage: ``python bench/local_model.py [--calls 5] [--tokens 64] [--rounds 2]``.
Prints tokens/s per way and the ratios to ``sequential``, best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Write a long story about a dragon who learns to count."


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{PROMPT} Story number {i}."}]


async def _chat(i: int, tokens: int) -> int:
    from concilium.agents.llm import chat

    reply = await chat(_messages(i), model="local/smollm2", temperature=0.7, seed=100 + i,
                       max_tokens=tokens)
    return reply.completion_tokens


def _direct(i: int, tokens: int, lock: threading.Lock) -> int:
    from concilium.agents.providers.local import REPEAT_PENALTY, load_model

    llama, _ = load_model("smollm2")
    with lock:
        out = llama.create_chat_completion(messages=_messages(i), temperature=0.7,
                                           seed=100 + i, max_tokens=tokens,
                                           repeat_penalty=REPEAT_PENALTY)
    return int(out["usage"]["completion_tokens"])


async def _way(way: str, calls: int, tokens: int) -> tuple[int, float]:
    """Completion tokens and seconds of one round of ``way``."""
    start = time.perf_counter()
    if way == "sequential":
        done = [await _chat(i, tokens) for i in range(calls)]
    elif way == "to_thread":
        lock = threading.Lock()
        done = await asyncio.gather(*(asyncio.to_thread(_direct, i, tokens, lock)
                                      for i in range(calls)))
    else:
        done = await asyncio.gather(*(_chat(i, tokens) for i in range(calls)))
    return sum(done), time.perf_counter() - start


async def _child(way: str, calls: int, tokens: int, rounds: int) -> dict[str, Any]:
    from concilium.agents.providers import local

    local.warm()
    await _chat(99, 8)  # litellm's first call sets itself up
    best = 0.0
    for _ in range(rounds):
        made, seconds = await _way(way, calls, tokens)
        best = max(best, made / seconds)
    return {"way": way, "tokens_per_s": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.calls, args.tokens, args.rounds))))
        return
    rates: dict[str, float] = {}
    for way in ("sequential", "to_thread", "provider"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", way, "--calls", str(args.calls),
             "--tokens", str(args.tokens), "--rounds", str(args.rounds)],
            capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            sys.exit(f"{way} failed:\n{out.stderr[-3000:]}")
        rates[way] = json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]
    base = rates["sequential"]
    print(f"{args.calls} calls x {args.tokens} tokens, best of {args.rounds} rounds")
    print(f"{'way':<28}{'tokens/s':>10}{'x sequential':>14}")
    for way, rate in rates.items():
        label = {"sequential": "sequential (one at a time)",
                 "to_thread": "overlapping, to_thread",
                 "provider": "overlapping, provider"}[way]
        print(f"{label:<28}{rate:>10.1f}{rate / base:>14.2f}")
    print("target: overlapping, provider >= 0.80 x sequential")


if __name__ == "__main__":
    main()
