"""Tokens per second of the default local model: alone, overlapping, batched.

Targets (issue #17): overlapping calls keep >= 0.8x the tokens/s of one sequential
call; N self-consistency samples (one prompt, N seeds) take <= 2.0x the wall time of
one sample. Each way of calling runs in a fresh process, because OpenMP thread teams
left behind by one way would slow the next:

- ``one``: a single call through ``agents.llm.chat``;
- ``sequential``: N calls one after another;
- ``to_thread``: N overlapping calls each in ``asyncio.to_thread`` behind a lock
  (what the provider did before: every pool thread got its own OpenMP team);
- ``unbatched``: N overlapping calls through the provider with
  ``CONCILIUM_LOCAL_BATCH=0`` (on the model's one thread, one call at a time);
- ``batched``: the same N calls decoded together in one batch (the default).

Usage: ``python bench/local_model.py [--calls 5] [--tokens 64] [--rounds 2]``.
Prints tokens/s and wall seconds per way (best of ``--rounds``) and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Write a long story about a dragon who learns to count."


MESSAGES = [{"role": "user", "content": PROMPT}]
WAYS = {"one": "one call", "sequential": "N calls in a row",
        "to_thread": "N overlapping, to_thread", "unbatched": "N overlapping, one thread",
        "batched": "N overlapping, batched"}


async def _chat(i: int, tokens: int) -> int:
    from concilium.agents.llm import RetryPolicy, chat

    reply = await chat(MESSAGES, model="local/smollm2", temperature=0.7, seed=100 + i,
                       max_tokens=tokens, retry=RetryPolicy(attempts=1, timeout_s=3600))
    return reply.completion_tokens


def _direct(i: int, tokens: int, lock: threading.Lock) -> int:
    from concilium.agents.providers.local import REPEAT_PENALTY, load_model

    llama, _ = load_model("smollm2")
    with lock:
        out = llama.create_chat_completion(messages=MESSAGES, temperature=0.7,
                                           seed=100 + i, max_tokens=tokens,
                                           repeat_penalty=REPEAT_PENALTY)
    return int(out["usage"]["completion_tokens"])


async def _way(way: str, calls: int, tokens: int) -> tuple[int, float]:
    """Completion tokens and seconds of one round of ``way``."""
    start = time.perf_counter()
    if way == "one":
        done = [await _chat(0, tokens)]
    elif way == "sequential":
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
    rounds_out = []
    for _ in range(rounds):
        if local.batching():  # a cold prompt each round, as in a real team run
            local.on_model_thread("smollm2", local.decoder("smollm2").forget).result()
        rounds_out.append(await _way(way, calls, tokens))
    return {"tokens_per_s": max(made / seconds for made, seconds in rounds_out),
            "seconds": min(seconds for _, seconds in rounds_out)}


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
    got: dict[str, dict[str, float]] = {}
    for way in WAYS:
        env = {**os.environ, "CONCILIUM_LOCAL_BATCH": "0" if way == "unbatched" else "1"}
        out = subprocess.run(
            [sys.executable, __file__, "--child", way, "--calls", str(args.calls),
             "--tokens", str(args.tokens), "--rounds", str(args.rounds)],
            capture_output=True, text=True, cwd=ROOT, env=env)
        if out.returncode != 0:
            sys.exit(f"{way} failed:\n{out.stderr[-3000:]}")
        got[way] = json.loads(out.stdout.strip().splitlines()[-1])
    base, one = got["sequential"]["tokens_per_s"], got["one"]["seconds"]
    print(f"N = {args.calls} calls of up to {args.tokens} tokens (one prompt, seeds 100..), "
          f"best of {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print(f"{'way':<28}{'tokens/s':>10}{'x in a row':>12}{'wall s':>9}{'x one call':>12}")
    for way, label in WAYS.items():
        rate, seconds = got[way]["tokens_per_s"], got[way]["seconds"]
        print(f"{label:<28}{rate:>10.1f}{rate / base:>12.2f}{seconds:>9.2f}{seconds / one:>12.2f}")
    print("targets: overlapping >= 0.80 x in a row (tokens/s); "
          "N batched <= 2.00 x one call (wall)")


if __name__ == "__main__":
    main()
