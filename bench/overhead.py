"""What concilium adds on top of litellm, and how fast the CLI starts.

Measured side by side in one run, with an instant scripted model so only our own
code is timed:

- ``litellm.acompletion`` called directly (the floor);
- ``agents.llm.chat`` (retries, accounting) around the same call;
- a whole ``single`` team run (graph build, state, ledger, result), and the same
  run durable (a LangGraph SQLite checkpoint per step, the call journal);
- ``concilium --help`` wall time in a fresh process.

Usage: ``python bench/overhead.py [--runs 200]``. Prints a table and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


def _ms(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, statistics.mean(samples) * 1000


async def _measure(runs: int) -> dict[str, list[float]]:
    from concilium import load_team
    from concilium.agents.llm import chat, litellm_module
    from concilium.agents.providers import scripted

    scripted.register("bench", scripted.Script(default="Answer: 4"))
    litellm = litellm_module()
    team = load_team(ROOT / "examples" / "teams" / "single.yaml", model="scripted/bench")

    async def direct() -> None:
        await litellm.acompletion(model="scripted/bench", messages=MESSAGES,
                                  metadata={"role": "generator"})

    async def door() -> None:
        await chat(MESSAGES, model="scripted/bench", metadata={"role": "generator"})

    async def whole_team() -> None:
        await team.arun("What is 2 + 2?", durable=False)

    async def durable_team() -> None:
        await team.arun("What is 2 + 2?", durable=True)

    timings: dict[str, list[float]] = {"litellm.acompletion": [], "llm.chat": [],
                                       "single team run": [], "durable single run": []}
    cases = list(zip(timings, (direct, door, whole_team, durable_team), strict=True))
    for _, fn in cases:  # warm-up: imports, provider registration, first compile
        for _ in range(5):
            await fn()
    for _ in range(runs):  # interleaved so drift hits every case alike
        for name, fn in cases:
            start = time.perf_counter()
            await fn()
            timings[name].append(time.perf_counter() - start)
    return timings


def _help_ms(repeats: int = 5) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "concilium.cli.app", "--help"],
                       check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    timings = asyncio.run(_measure(args.runs))
    help_median, help_mean = _ms(_help_ms())
    floor = statistics.median(timings["litellm.acompletion"]) * 1000
    print(f"{'case':<22}{'median ms':>11}{'mean ms':>10}{'x direct':>10}")
    for name, samples in timings.items():
        median, mean = _ms(samples)
        print(f"{name:<22}{median:>11.2f}{mean:>10.2f}{median / floor:>10.2f}")
    team_median = statistics.median(timings["single team run"]) * 1000
    durable_median = statistics.median(timings["durable single run"]) * 1000
    print(f"\nsingle team adds {team_median - floor:.2f} ms per run over one direct call "
          f"({team_median / floor:.2f}x), {args.runs} runs each, interleaved")
    print(f"checkpoints and the call journal add {durable_median - team_median:.2f} ms per run "
          f"({durable_median / team_median:.2f}x the plain run)")
    print(f"concilium --help: median {help_median:.0f} ms, mean {help_mean:.0f} ms "
          "(fresh process, 5 runs; target: well under 1000 ms)")


if __name__ == "__main__":
    main()
